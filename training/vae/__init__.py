"""Image <-> latent codecs: a diffusers AutoencoderKL (pretrained or fitted on the demo) or the Haar wavelet.

Every codec has one interface (`LatentCodec`): images in [-1, 1] -> scaled posterior (mean, std), and
scaled latents -> images. `CodecSpec` (a small JSON file written by the `vae` stage) says which codec
to open; `open_codec` opens it on the best device.
"""

from training.vae.codec import CodecSpec, LatentCodec, best_device, open_codec
from training.vae.haar import HaarCodec, haar_forward, haar_inverse
from training.vae.kl_codec import KLCodec, load_autoencoder, weights_digest

__all__ = [
    "CodecSpec",
    "HaarCodec",
    "KLCodec",
    "LatentCodec",
    "best_device",
    "haar_forward",
    "haar_inverse",
    "load_autoencoder",
    "open_codec",
    "weights_digest",
]
