"""The `vae` stage: load the configured image codec (or fit the demo AutoencoderKL) and report its quality."""
