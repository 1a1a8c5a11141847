"""Benchmark of the diffusion classifier: network evaluations per image, images/s and accuracy.

One run, one trained model, one test set, several ways of voting (issue 7 §3):
  (a) naive loop: the paper's Appendix A, one forward of batch 1 per class per trial, 501 trials
  (b) batched full vote: 501 trials, images x trials x classes per forward
  (c) batched vote with exact early stop: the prediction of (b) by construction
  (d) batched vote with predictive early stop (risk of differing from (b) below early_stop_risk)
  (d') (d) with i.i.d. t instead of the stratified t
  (e) (d) with a trial budget and a t range chosen on a separate validation draw
The model is a small conditional eps-predictor trained here in seconds on a two-class toy latent
distribution (a class-dependent pattern plus correlated Gaussian noise; Bayes accuracy printed), with
the DiT's interface: model(x_t, t, {"label": y}) -> 2C channels (eps, unused variance), null label 2.
The paper's cost is 501 trials x 2 classes = 1002 network evaluations per image (3.72 s on an A100,
Section 5 "Limitations"); the goal is >= 20x fewer evaluations at accuracy within 1 point of (b).

    .venv/bin/python scripts/bench_diffusion_classifier.py --out /tmp/bench_diffusion_classifier
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.conditions import null_index
from training.diffusion.schedule import DiffusionSchedule
from training.diffusion_classifier import (
    DiffusionClassifierParams,
    accuracy_vs_trials,
    classify_latents,
    classify_naive,
    confidence_by_outcome,
    explain_counterfactual,
    retention_curve,
)
from training.diffusion_classifier.evaluation import informative_t_range, sufficient_trials, vote_accuracy_by_t
from training.diffusion_classifier.plots import (
    plot_accuracy_vs_trials,
    plot_confidence_by_outcome,
    plot_retention_curve,
    render_counterfactual_gallery,
)

log = logging.getLogger("bench_diffusion_classifier")
SHAPE = (4, 8, 8)
TRIAL_COUNTS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 501]  # the Fig. 2 ablation's N, prefixes of one run


class ToyLatents:
    """z = s * (2y - 1) * pattern + noise; noise = (blurred + white) Gaussian, unit variance per pixel."""

    def __init__(self, separation: float, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
        blob = torch.exp(-((yy - 3.5) ** 2 + (xx - 4.5) ** 2) / 6.0)
        pattern = blob[None] * torch.tensor([1.0, -0.5, 0.8, 0.3])[:, None, None]
        self.pattern = pattern / pattern.norm()
        self.separation = separation
        self.kernel = torch.ones(SHAPE[0], 1, 3, 3) / 3.0  # blur: neighbouring pixels correlate
        self.generator = g

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 2, (n,), generator=self.generator)
        white = torch.randn((n, *SHAPE), generator=self.generator)
        smooth = nn.functional.conv2d(torch.randn((n, *SHAPE), generator=self.generator), self.kernel, padding=1,
                                      groups=SHAPE[0])
        noise = (0.6 * white + 0.8 * smooth) / math.sqrt(0.36 + 0.64)
        sign = (2 * labels - 1).float().view(-1, 1, 1, 1)
        return sign * self.separation * self.pattern + noise, labels


class ToyDenoiser(nn.Module):
    """MLP eps-predictor conditioned on t and the label (null token = 2), FiLM-style."""

    def __init__(self, hidden: int = 384) -> None:
        super().__init__()
        dim = math.prod(SHAPE)
        self.inp = nn.Linear(dim, hidden)
        self.t_embed = nn.Sequential(nn.Linear(64, hidden), nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.label_embed = nn.Embedding(null_index("label") + 1, 2 * hidden)
        self.body = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2 * dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        half = torch.exp(-math.log(10000.0) * torch.arange(32, device=x.device) / 32)
        angles = t.float()[:, None] * half[None]
        emb = self.t_embed(torch.cat([angles.sin(), angles.cos()], dim=1)) + self.label_embed(cond["label"])
        scale, shift = emb.chunk(2, dim=1)
        h = self.inp(x.flatten(1)) * (1 + scale) + shift
        out = self.body(h).view(x.shape[0], 2 * SHAPE[0], *SHAPE[1:])
        return torch.cat([out[:, : SHAPE[0]], torch.zeros_like(out[:, SHAPE[0] :])], dim=1)


def train(model: ToyDenoiser, data: ToyLatents, steps: int, schedule: DiffusionSchedule, seed: int,
          batch: int = 256) -> float:
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    lr = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        z0, y = data.sample(batch)
        y = torch.where(torch.rand(batch, generator=g) < 0.1, null_index("label"), y)  # CFG dropout 10 %
        t = torch.randint(0, schedule.num_timesteps, (batch,), generator=g)
        eps = torch.randn(z0.shape, generator=g)
        loss = (model(schedule.add_noise(z0, eps, t), t, {"label": y})[:, : SHAPE[0]] - eps).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        lr.step()
    return float(loss.detach())


def bayes_accuracy(data: ToyLatents, latents: torch.Tensor, labels: torch.Tensor) -> float:
    """The optimal (LDA) decision for this Gaussian toy: sign of pattern' Sigma^-1 z, Sigma from samples."""
    z, y = data.sample(20000)
    flat = (z - ((2 * y - 1).float().view(-1, 1, 1, 1) * data.separation * data.pattern)).flatten(1)
    w = torch.linalg.solve(torch.cov(flat.T.double()), data.pattern.flatten().double())
    return float(((latents.flatten(1).double() @ w > 0).long() == labels).double().mean())


def timed(fn):  # noqa: ANN001, ANN201
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def row(name: str, result, seconds: float, labels: torch.Tensor, reference: torch.Tensor | None) -> dict:  # noqa: ANN001
    evals = float(result.network_evals.double().mean())
    agree = diff = diff_se = None
    if reference is not None:  # paired: the same images, correct here minus correct in the full vote
        agree = float((result.predicted == reference).double().mean())
        paired = (result.predicted == labels).double() - (reference == labels).double()
        diff, diff_se = float(paired.mean()), float(paired.std() / math.sqrt(paired.numel()))
    return {"mode": name, "images": int(labels.numel()), "evals_per_image": evals,
            "fewer_than_paper": 1002.0 / evals, "images_per_s": labels.numel() / seconds,
            "s_per_image": seconds / labels.numel(),
            "accuracy": float((result.predicted == labels).double().mean()),
            "agrees_with_full_vote": agree, "accuracy_minus_full_vote": diff, "difference_se": diff_se}


def tune_on_validation(model: ToyDenoiser, data: ToyLatents, n: int, base: DiffusionClassifierParams,
                       schedule: DiffusionSchedule) -> tuple[tuple[float, float], int, list, list]:
    """t range and trial budget from a separate validation draw (never from the test images).

    t range: the t bins whose single trials vote the true class within 5 points of the best bin.
    Budget: the smallest power-of-two prefix of the full vote (in that range) within 0.5 point of its
    501-trial accuracy (the paper's Fig. 2 ablation, computed on prefixes of one run).
    """
    latents, labels = data.sample(n)
    full = classify_latents(model, latents, base.model_copy(update={"early_stop": "off"}), schedule, progress=False)
    by_t = vote_accuracy_by_t(full.errors, full.timesteps, labels, (0, 1))
    t_range = informative_t_range(by_t, tolerance=0.05)
    ranged = classify_latents(model, latents, base.model_copy(update={"early_stop": "off", "t_range": t_range}),
                              schedule, progress=False)
    ablation = accuracy_vs_trials(ranged.errors, labels, (0, 1), TRIAL_COUNTS)
    return t_range, sufficient_trials(ablation, tolerance=0.005), by_t, ablation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="test images")
    parser.add_argument("--validation-images", type=int, default=500, help="images to tune t range and budget on")
    parser.add_argument("--naive-images", type=int, default=10, help="the naive loop runs on the first ones only")
    parser.add_argument("--train-steps", type=int, default=3000)
    parser.add_argument("--separation", type=float, default=2.4)
    parser.add_argument("--risk", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_diffusion_classifier"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    schedule = DiffusionSchedule()
    data = ToyLatents(args.separation, args.seed)
    model = ToyDenoiser()
    loss, train_s = timed(lambda: train(model, data, args.train_steps, schedule, args.seed))
    log.info("trained %d steps in %.1f s, final loss %.4f", args.train_steps, train_s, loss)
    model.eval()
    base = DiffusionClassifierParams(n_trials=501, chunk_size=4, images_per_forward=64, seed=args.seed)
    t_range, budget, by_t, val_ablation = tune_on_validation(model, data, args.validation_images, base, schedule)
    log.info("validation: t range %s, trial budget %d", t_range, budget)

    latents, labels = data.sample(args.images)
    bayes = bayes_accuracy(data, latents, labels)

    def run(update: dict, images: slice = slice(None), naive: bool = False):  # noqa: ANN202
        classify = classify_naive if naive else classify_latents
        return timed(lambda: classify(model, latents[images], base.model_copy(update=update), schedule,
                                      progress=False))

    full, full_s = run({"early_stop": "off"})
    reference = full.predicted
    k = min(args.naive_images, args.images)
    naive, naive_s = run({"early_stop": "off"}, slice(0, k), naive=True)
    exact, exact_s = run({})
    predictive, predictive_s = run({"early_stop": "predictive", "early_stop_risk": args.risk})
    iid, iid_s = run({"early_stop": "predictive", "early_stop_risk": args.risk, "stratified": False})
    tuned, tuned_s = run({"early_stop": "predictive", "early_stop_risk": args.risk, "n_trials": budget,
                          "t_range": t_range})
    rows = [row(f"(a) naive loop, N=501 (first {k} images)", naive, naive_s, labels[:k], reference[:k]),
            row("(b) batched full vote, N=501", full, full_s, labels, None),
            row("(c) batched, exact early stop, N=501", exact, exact_s, labels, reference),
            row(f"(d) batched, predictive early stop (risk {args.risk}), N=501", predictive, predictive_s, labels,
                reference),
            row("(d') as (d) with i.i.d. t instead of stratified t", iid, iid_s, labels, reference),
            row(f"(e) batched, predictive early stop (risk {args.risk}), N={budget}, "
                f"t in [{t_range[0]:.1f}, {t_range[1]:.1f})", tuned, tuned_s, labels, reference)]

    ablation = accuracy_vs_trials(full.errors, labels, (0, 1), TRIAL_COUNTS)
    retention = retention_curve(full.predicted == labels, full.vote_entropy)
    args.out.mkdir(parents=True, exist_ok=True)
    plot_accuracy_vs_trials(ablation, args.out / "accuracy_vs_trials.png")
    plot_retention_curve(retention, args.out / "retention.png")
    confidence = confidence_by_outcome(full.predicted, labels, full.vote_share)
    plot_confidence_by_outcome(confidence, args.out / "confidence_by_outcome.png")
    median_confidence = {k: float(np.median(v)) if len(v) else None for k, v in confidence.items()}
    show = torch.cat([torch.nonzero(labels == 1).flatten()[:3], torch.nonzero(labels == 0).flatten()[:3]])
    explanation = explain_counterfactual(model, latents[show], labels[show], base, schedule=schedule,
                                         decode=lambda z: nn.functional.interpolate(z[:, :3], scale_factor=8))
    render_counterfactual_gallery(explanation, args.out / "counterfactuals.png", value_range=(-3.0, 3.0))

    goal = rows[-1]["fewer_than_paper"] >= 20 and rows[-1]["accuracy"] >= rows[1]["accuracy"] - 0.01
    summary = {"date": date.today().isoformat(), "machine": f"{platform.machine()} CPU, {args.threads} torch "
               f"thread(s), torch {torch.__version__}", "model_parameters": sum(p.numel() for p in model.parameters()),
               "train_steps": args.train_steps, "train_seconds": train_s, "bayes_accuracy": bayes,
               "validation": {"t_range": t_range, "budget": budget, "per_t_vote_accuracy": by_t,
                              "accuracy_vs_trials": val_ablation},
               "rows": rows, "goal_met_by_e": goal, "median_confidence": median_confidence,
               "accuracy_vs_trials": ablation, "retention": retention}
    for r in retention:  # nothing retained at 100 %: JSON null rather than NaN
        r["accuracy"] = None if math.isnan(r["accuracy"]) else r["accuracy"]
    (args.out / "bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("Bayes accuracy %.3f on %d test images; goal (e): %s", bayes, args.images, goal)
    log.info("| mode | network evals / image | fewer than 1002 | images/s | accuracy | vs (b), paired ± se "
             "| agrees with (b) |")
    for r in rows:
        agree = "—" if r["agrees_with_full_vote"] is None else f"{r['agrees_with_full_vote']:.3f}"
        diff = "—" if r["accuracy_minus_full_vote"] is None else \
            f"{100 * r['accuracy_minus_full_vote']:+.1f} ± {100 * r['difference_se']:.1f} pt"
        log.info("| %s | %.1f | %.1fx | %.1f | %.3f | %s | %s |", r["mode"], r["evals_per_image"],
                 r["fewer_than_paper"], r["images_per_s"], r["accuracy"], diff, agree)
    for a in ablation:
        log.info("| %d | %.3f | %.3f | %.3f | %.3f |", a["n_trials"], a["majority_accuracy"], a["majority_f1"],
                 a["average_accuracy"], a["average_f1"])
    log.info("median confidence (vote share): %s", median_confidence)
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
