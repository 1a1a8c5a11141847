"""Benchmark of the training step: samples/s and peak memory, eager fp32 against the optimized step.

The step is the one `training.train` runs: DiT forward, the DiT/IDDPM loss, (Class-N-Diff) the latent
classifier on x̂0 with gradients into the DiT, one backward, AdamW on both models, the EMA update.
Configurations (issue 4 §5), batch 8 of 4×32×32 latents:
  DiT-S/4 adaln, DiT-B/4 adaln (like for like with the DiT reference step), and the Class-N-Diff step
  (DiT + ResNet-101 classifier; γ = 1 and a classifier step every step, the most expensive case).
Variants: eager fp32 with PyTorch's default (for-loop) AdamW — the baseline —, fused AdamW, bf16 autocast,
torch.compile, and their combinations. Every (configuration, variant) runs in its own process so peak memory
(max RSS on CPU, max allocated on CUDA) and compile caches do not leak between measurements.

    .venv/bin/python scripts/bench_training.py                      # CPU, writes docs/benchmarks.md
    .venv/bin/python scripts/bench_training.py --device cuda --class-n-diff-dit DiT-L/4 --steps 30
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.class_n_diff.step import StepNoise, joint_step  # noqa: E402
from training.diffusion.schedule import DiffusionSchedule  # noqa: E402
from training.dit import create_dit  # noqa: E402
from training.latent_classifier import LatentClassifier, LatentClassifierConfig  # noqa: E402
from training.train import ema_update  # noqa: E402

log = logging.getLogger("bench_training")
SECTION = "Training step"
VARIANTS = {
    "eager fp32": {"bf16": False, "fused": False, "compile": False},
    "fused AdamW": {"bf16": False, "fused": True, "compile": False},
    "bf16 + fused": {"bf16": True, "fused": True, "compile": False},
    "compile + fused": {"bf16": False, "fused": True, "compile": True},
    "compile + bf16 + fused": {"bf16": True, "fused": True, "compile": True},
}
# Dense bf16 tensor-core peaks (NVIDIA data sheets, SXM parts) for model-FLOPs utilisation
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}


def measure(spec: dict) -> dict:
    """One configuration × variant in this process: median step time, samples/s, peak memory, FLOPs."""
    device = torch.device(spec["device"])
    if device.type == "cpu":
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    batch, shape = spec["batch"], (4, 32, 32)
    dit = create_dit(spec["dit"], conditioning=spec["conditioning"], input_size=shape[1:]).to(device)
    ema = create_dit(spec["dit"], conditioning=spec["conditioning"], input_size=shape[1:]).to(device)
    ema.load_state_dict(dit.state_dict())
    classifier = (LatentClassifier(LatentClassifierConfig(backbone=spec["classifier"])).to(device)
                  if spec["classifier"] else None)
    options = {"fused": True} if spec["fused"] else ({"foreach": False} if device.type == "cpu" else {})
    opt_dit = torch.optim.AdamW(dit.parameters(), lr=1e-4, weight_decay=0, **options)
    opt_cls = torch.optim.AdamW(classifier.parameters(), lr=1e-4, **options) if classifier else None
    run_dit = torch.compile(dit) if spec["compile"] else dit
    run_cls = torch.compile(classifier) if spec["compile"] and classifier else classifier
    schedule = DiffusionSchedule()
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        z0 = torch.randn(batch, *shape, generator=generator).to(device)
        conditions = {"label": torch.randint(0, 2, (batch,), generator=generator).to(device)}
        draws = StepNoise.draw(z0.shape, schedule.num_timesteps, generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=spec["bf16"]):
            result = joint_step(run_dit, run_cls, schedule, z0, conditions, draws, gamma=1.0, lam=0.2)
        result.backward.backward()
        for opt in (opt_dit, opt_cls):
            if opt is not None:
                opt.step()
                opt.zero_grad(set_to_none=True)
        ema_update(ema, dit, 0.9999)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    started = time.perf_counter()
    step()
    sync()
    first_step = time.perf_counter() - started  # includes compilation
    for _ in range(spec["warmup"] - 1):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(spec["steps"]):
        started = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - started)
    flops = None
    if not spec["compile"] and device.type == "cuda":  # FLOPs only for the GPU's MFU
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()
    median = statistics.median(times)
    out = {"median_step_s": median, "samples_per_s": batch / median, "first_step_s": first_step,
           "step_times": times, "flops_per_step": flops,
           "params_dit": sum(p.numel() for p in dit.parameters()),
           "params_classifier": sum(p.numel() for p in classifier.parameters()) if classifier else 0}
    if device.type == "cuda":
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        out["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return out


def pool(measured: list[dict]) -> dict:
    """One row from the rounds of a variant: the median over all their timed steps."""
    ok = [m for m in measured if "error" not in m]
    if not ok:
        return measured[0]
    times = [t for m in ok for t in m["step_times"]]
    median = statistics.median(times)
    return ok[0] | {"median_step_s": median, "samples_per_s": ok[0]["samples_per_s"] * ok[0]["median_step_s"] / median,
                    "step_times": times, "rounds": len(ok),
                    "peak_memory_mb": max(m["peak_memory_mb"] for m in ok)}


def run_isolated(spec: dict, timeout: float) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode or not lines:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1][:300] if (done.stderr or done.stdout)
                else f"exit {done.returncode}"}
    return json.loads(lines[-1])


def cpu_has_bf16() -> bool:
    """AMX-BF16 or AVX512-BF16 in /proc/cpuinfo: without them oneDNN emulates bf16 matmuls (slow)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def machine(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.startswith("model name")]
        flags = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags"))
        bf16 = sorted({f for f in flags.split() if "amx" in f or "bf16" in f}) or ["AVX2; no AMX / AVX512-BF16"]
        cpu = f"{names[0]} × {os.cpu_count()} logical cores ({', '.join(bf16)})"
    except (OSError, StopIteration, IndexError):
        pass
    text = f"{cpu}; torch {torch.__version__}"
    if device == "cuda":
        text = f"{torch.cuda.get_device_name()} ({text})"
    return text


def mfu(result: dict, device_name: str) -> float | None:
    peak = next((v for k, v in PEAK_BF16.items() if k in device_name), None)
    if not peak or not result.get("flops_per_step"):
        return None
    return result["flops_per_step"] / result["median_step_s"] / peak


def markdown(results: list[dict], args: argparse.Namespace, started: str, load: tuple[float, float]) -> str:
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    lines = [f"## {SECTION}", "",
             f"`scripts/bench_training.py --device {args.device}` — {started}; machine: {machine(args.device)}"
             f"{f'; {args.threads} CPU thread(s) per measurement' if args.device == 'cpu' else ''}; "
             f"{'' if args.device == 'cuda' or cpu_has_bf16() else f'bf16 rows: {args.slow_steps} timed steps; '}"
             f"load average {load[0]:.1f} before, {load[1]:.1f} after (a shared machine: other jobs ran).", "",
             f"Batch {args.batch} of 4×32×32 latents; one step = DiT forward + DiT/IDDPM loss (+ classifier on x̂0 "
             f"with γ = 1 and a classifier step every step) + backward + AdamW + EMA; median of {args.steps} steps "
             f"after {args.warmup} warm-up steps × {args.rounds} interleaved rounds, each run in its own process. "
             f"Peak memory: max RSS of that process on CPU, max allocated on CUDA. "
             f"Baseline: eager fp32, PyTorch's default AdamW. Anchor on this "
             f"machine kind (issue 4): the facebookresearch/DiT reference step, fp32 eager, DiT-S/4 ≈ 9.3 and "
             f"DiT-B/4 ≈ 3.1 samples/s.", "",
             "| configuration | variant | samples/s | × eager fp32 | step (s) | first step (s) | peak memory (MiB) |"
             + (" GFLOP/step | MFU (bf16 peak) |" if args.device == "cuda" else ""),
             "|---|---|---|---|---|---|---|" + ("---|---|" if args.device == "cuda" else "")]
    best = {}
    for r in results:
        if "error" in r:
            lines.append(f"| {r['config']} | {r['variant']} | failed: {r['error']} | | | | |")
            continue
        base = next((b for b in results if b["config"] == r["config"] and b["variant"] == "eager fp32"
                     and "error" not in b), None)
        ratio = r["samples_per_s"] / base["samples_per_s"] if base else None
        if ratio and (r["config"] not in best or ratio > best[r["config"]][1]):
            best[r["config"]] = (r["variant"], ratio)
        row = (f"| {r['config']} | {r['variant']} | {r['samples_per_s']:.2f} | "
               f"{'' if ratio is None else f'{ratio:.2f}×'} | {r['median_step_s']:.3f} | {r['first_step_s']:.1f} | "
               f"{r['peak_memory_mb']:.0f} |")
        if args.device == "cuda":
            flops = r.get("flops_per_step")
            value = mfu(r, device_name)
            row += f" {'' if flops is None else f'{flops / 1e9:.1f}'} | {'' if value is None else f'{value:.1%}'} |"
        lines.append(row)
    lines += ["", "Best variant per configuration: " + "; ".join(
        f"{config}: {variant} ({ratio:.2f}× eager fp32)" for config, (variant, ratio) in best.items()) + ".", ""]
    return "\n".join(lines)


def replace_section(path: Path, section: str) -> None:
    """Put `section` (starting with its `## ` title) into `path`, replacing that section only.

    The file is re-read right before writing: other benchmark scripts own other sections of it."""
    title = section.splitlines()[0]
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip() + "\n\n", text)
    else:
        text = text.rstrip() + "\n\n" + section.rstrip() + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2,
                        help="repeat the fast variants, interleaved, so drifting load on a shared machine hits "
                             "every variant alike; a row pools the step times of all rounds")
    parser.add_argument("--slow-steps", type=int, default=1,
                        help="timed steps (after 1 warm-up) for bf16 variants on a CPU without AMX/AVX512-BF16, "
                             "where bf16 matmuls are emulated and a step takes minutes")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads per measurement: on a shared 2-core machine two OpenMP threads stall "
                             "on each other's waits (10x slower under load), so the default is 1")
    parser.add_argument("--class-n-diff-dit", default="DiT-S/4",
                        help="DiT of the Class-N-Diff step (real profile DiT-L/4; S/4 keeps the CPU run short)")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--configs", nargs="*", default=["DiT-S/4", "DiT-B/4", "Class-N-Diff"])
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(json.loads(args.one))))
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    configs = {
        "DiT-S/4": {"dit": "DiT-S/4", "conditioning": "adaln", "classifier": None},
        "DiT-B/4": {"dit": "DiT-B/4", "conditioning": "adaln", "classifier": None},
        "Class-N-Diff": {"dit": args.class_n_diff_dit, "conditioning": "cross_attn", "classifier": "resnet101"},
    }
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()[0]
    results = []
    for name in args.configs:
        config = configs[name]
        label = name if name != "Class-N-Diff" else f"Class-N-Diff ({config['dit']} cross_attn + ResNet-101)"
        rounds: dict[str, list[dict]] = {v: [] for v in args.variants}
        for round_index in range(args.rounds):
            for variant in args.variants:
                spec = {**config, **VARIANTS[variant], "device": args.device, "batch": args.batch,
                        "steps": args.steps, "warmup": args.warmup, "threads": args.threads}
                if spec["bf16"] and args.device == "cpu" and not cpu_has_bf16():
                    if round_index:
                        continue  # minutes per step: one round
                    spec |= {"steps": args.slow_steps, "warmup": 1}
                result = run_isolated(spec, args.timeout)
                log.info("%s | %s | round %d: %s", label, variant, round_index, {k: v for k, v in result.items()})
                rounds[variant].append(result)
        results += [pool(measured) | {"config": label, "variant": v} for v, measured in rounds.items()]
    section = markdown(results, args, started, (load_before, os.getloadavg()[0]))
    print(section)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if not args.no_doc:
        replace_section(args.doc, section)


if __name__ == "__main__":
    main()
