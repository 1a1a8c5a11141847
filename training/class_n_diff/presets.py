"""Joint-training settings: the γ gate schedule, λ, and the paper's Table I as presets (METHOD.md §3).

γ is the probability that the classifier sees the DiT's denoised latent x̂0 instead of the clean z0.
From `classifier_start` on, γ(step) = min(γ_max, γ_initial + γ_step · ⌊(step − classifier_start) / γ_period⌋);
before it the classifier is neither run nor trained (γ = 0).

Table I gives λ, the optimizer cadence and "γ increased periodically from 0" but not the increments. This
project's choice for settings 3–5 (documented, overridable): +0.05 every tenth of the run up to 0.25 — the
fixed γ of the authors' code and of setting 2 — reached halfway through training:

| preset   | classifier          | γ                            | λ   | classifier step |
|----------|---------------------|------------------------------|-----|-----------------|
| setting1 | none (DiT alone)    | —                            | —   | —               |
| setting2 | last two epochs     | 0.25 constant                | 0.2 | every step      |
| setting3 | whole run           | 0, +0.05 per steps/10, ≤0.25 | 0.2 | every 3 steps   |
| setting4 | whole run           | as setting3                  | 0.2 | every step      |
| setting5 | whole run           | as setting3                  | 0.3 | every 3 steps   |
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from training.class_n_diff.params import TrainParams


@dataclass(frozen=True)
class JointConfig:
    use_classifier: bool
    lam: float = 0.0
    gamma_initial: float = 0.0
    gamma_step: float = 0.0
    gamma_period: int = 1
    gamma_max: float = 0.0
    classifier_start: int = 0
    classifier_update_every: int = 1

    def classifier_active(self, step: int) -> bool:
        """Whether the classifier is run and trained at (0-based) optimizer step `step`."""
        return self.use_classifier and step >= self.classifier_start

    def gamma(self, step: int) -> float:
        if not self.classifier_active(step):
            return 0.0
        raised = self.gamma_initial + self.gamma_step * ((step - self.classifier_start) // self.gamma_period)
        return float(min(self.gamma_max, raised))

    def classifier_steps_after(self, step: int) -> bool:
        """Whether the classifier's optimizer steps at the end of step `step` (every k active steps)."""
        if not self.classifier_active(step):
            return False
        return (step - self.classifier_start + 1) % self.classifier_update_every == 0

    def to_dict(self) -> dict:
        return asdict(self)


def preset(name: str, steps: int, steps_per_epoch: int) -> JointConfig:
    """Table I row `name` for a run of `steps` optimizer steps with `steps_per_epoch` steps per epoch."""
    ramp = JointConfig(use_classifier=True, lam=0.2, gamma_initial=0.0, gamma_step=0.05,
                       gamma_period=max(1, steps // 10), gamma_max=0.25, classifier_start=0,
                       classifier_update_every=3)
    if name == "setting1":
        return JointConfig(use_classifier=False)
    if name == "setting2":
        # "Train classification model for the last two epochs only with γ = 0.25, and λ = 0.2"
        return JointConfig(use_classifier=True, lam=0.2, gamma_initial=0.25, gamma_step=0.0, gamma_period=1,
                           gamma_max=0.25, classifier_start=max(0, steps - 2 * steps_per_epoch),
                           classifier_update_every=1)
    if name == "setting3":
        return ramp
    if name == "setting4":
        return replace(ramp, classifier_update_every=1)
    if name == "setting5":
        return replace(ramp, lam=0.3)
    raise KeyError(f"unknown preset {name!r}; expected setting1..setting5")


def resolve_joint_config(params: TrainParams, steps_per_epoch: int) -> JointConfig:
    """The preset of `params`, with every explicitly set joint field of `params` on top."""
    config = preset(params.preset, params.steps, steps_per_epoch)
    overrides = {name: getattr(params, name) for name in
                 ("lam", "gamma_initial", "gamma_step", "gamma_period", "gamma_max", "classifier_start",
                  "classifier_update_every") if getattr(params, name) is not None}
    if overrides and not config.use_classifier:
        raise ValueError(f"preset setting1 trains the DiT alone; joint fields {sorted(overrides)} do not apply")
    return replace(config, **overrides)
