"""DDIM and DPM-Solver++ as diffusers schedulers configured on the project's DDPM schedule.

Both start at the last training step (t = 999, pure noise under the linear schedule: alpha_bar = 4e-5) and
end on the clean latent: DDIM with `timestep_spacing="trailing"` and `set_alpha_to_one=True` (its last step
returns the predicted x0), DPM-Solver++ with `final_sigmas_type="zero"`. Only the eps channels are passed;
the learned variance is unused by these solvers.
"""

from __future__ import annotations

from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from training.diffusion.schedule import DiffusionSchedule


def _common(schedule: DiffusionSchedule) -> dict:
    return {"num_train_timesteps": schedule.num_timesteps, "beta_start": schedule.beta_start,
            "beta_end": schedule.beta_end, "beta_schedule": "linear", "prediction_type": "epsilon"}


def ddim_scheduler(schedule: DiffusionSchedule, steps: int) -> DDIMScheduler:
    scheduler = DDIMScheduler(**_common(schedule), clip_sample=False, set_alpha_to_one=True,
                              timestep_spacing="trailing")
    scheduler.set_timesteps(steps)
    return scheduler


def dpm_solver_scheduler(schedule: DiffusionSchedule, steps: int, order: int = 2) -> DPMSolverMultistepScheduler:
    """DPM-Solver++ (Lu et al. 2022), multistep, data prediction; lower order on the last steps for stability."""
    scheduler = DPMSolverMultistepScheduler(**_common(schedule), algorithm_type="dpmsolver++", solver_order=order,
                                            final_sigmas_type="zero", lower_order_final=True,
                                            timestep_spacing="linspace")
    scheduler.set_timesteps(steps)
    return scheduler
