"""The diffusion classifier as a ranking (issue 15): the reweighted vote, the AUC tuning of the t window, N and
the score on validation only, and the paired bootstrap over images and trial seeds. Values against hand
computations and references, on hand-made per-trial error tables (no network)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from pipelines.diffusion_classifier_report.params import DiffusionClassifierReportParams
from pipelines.diffusion_classifier_report.tuning import choose_ranking_vote
from tests.test_diffusion_classifier_report import SHAPE, lesion_table, write_shards
from training.diffusion_classifier import DiffusionClassifierParams
from training.diffusion_classifier.classify import DiffusionClassification
from training.diffusion_classifier.comparison import paired_auc_bootstrap, paired_auc_difference
from training.diffusion_classifier.decision import (
    ScoreRule,
    decision_rule_text,
    raw_score,
    reweighted_decision,
)
from training.diffusion_classifier.evaluation import (
    auc_by_t,
    ranking_t_window,
    ranking_trial_counts,
    retention_curve,
    seed_summary,
    smallest_sufficient_n,
    trials_in_window,
)
from training.diffusion_classifier.votes import vote_entropy, vote_share
from training.dit import create_dit, save_dit

nan = float("nan")


def binary_entropy(p: float) -> float:
    return 0.0 if p in (0.0, 1.0) else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


# --- the reweighted vote ------------------------------------------------------------------------------------

def test_reweighted_vote_against_a_hand_computation() -> None:
    # votes (malignant, benign) of four images; validation threshold t = 0.25 on the malignant share -> w = 3
    votes = [(1, 9), (1, 3), (3, 7), (6, 4)]
    share = np.array([m / (m + b) for m, b in votes])  # 0.1, 0.25, 0.3, 0.6
    decision = reweighted_decision(share, 0.25)
    # w * m >= b: 3 < 9 benign; 3 >= 3 malignant (a tie is malignant's); 9 >= 7; 18 >= 4
    assert decision.positive.tolist() == [0, 1, 1, 1]
    weighted = [3 * m / (3 * m + b) for m, b in votes]  # the weighted vote share of malignant
    np.testing.assert_allclose(decision.probability, weighted)
    np.testing.assert_allclose(decision.probability, [0.25, 0.5, 9 / 16, 18 / 22])
    np.testing.assert_allclose(decision.confidence, [0.75, 0.5, 9 / 16, 18 / 22])
    np.testing.assert_allclose(decision.uncertainty_bits, [binary_entropy(p) for p in weighted])
    # the plain majority would call only the last one malignant
    assert reweighted_decision(share, 0.5).positive.tolist() == [0, 0, 0, 1]
    # at t = 0.5 the confidence and uncertainty are the paper's vote share and vote entropy (no ties here)
    counts = torch.tensor([[b, m] for m, b in votes])
    plain = reweighted_decision(share, 0.5)
    np.testing.assert_allclose(plain.confidence, vote_share(counts).numpy(), rtol=1e-6)
    np.testing.assert_allclose(plain.uncertainty_bits, vote_entropy(counts).numpy(), rtol=1e-6)
    # degenerate thresholds: t = 0 calls everything malignant, a zero share sits on the threshold
    edge = reweighted_decision(np.array([0.0, 0.2]), 0.0)
    assert edge.positive.tolist() == [1, 1] and edge.probability.tolist() == [0.5, 1.0]
    assert "w = (1 - t) / t = 3" in decision_rule_text("vote_share", 0.25)


def result_with(votes: list[tuple[int, int]], mean_errors: list[tuple[float, float]]) -> DiffusionClassification:
    n = len(votes)
    return DiffusionClassification(
        classes=(0, 1), predicted=torch.zeros(n, dtype=torch.long), votes=torch.tensor(votes),
        trials_used=torch.full((n,), 4), network_evals=torch.full((n,), 8), vote_share=torch.zeros(n),
        vote_entropy=torch.zeros(n), mean_error=torch.tensor(mean_errors), errors=torch.zeros((n, 2, 4)),
        timesteps=torch.zeros((n, 4), dtype=torch.long))


def test_scores_and_their_unit_maps() -> None:
    result = result_with([(3, 1), (1, 3), (2, 2)], [(1.0, 0.5), (0.4, 0.6), (0.8, 0.8)])
    torch.testing.assert_close(raw_score(result, "vote_share"), torch.tensor([0.25, 0.75, 0.5], dtype=torch.float64))
    torch.testing.assert_close(raw_score(result, "error_gap"), torch.tensor([0.5, -0.2, 0.0], dtype=torch.float64))
    rule = ScoreRule.fit("error_gap", result)
    gaps = np.array([0.5, -0.2, 0.0])
    assert rule.scale == pytest.approx(np.std(gaps, ddof=1))
    np.testing.assert_allclose(rule(result), 1 / (1 + np.exp(-gaps / rule.scale)))
    assert rule(result)[2] == 0.5  # gap 0 <-> 0.5: the averaging decision
    assert ScoreRule.fit("vote_share", result)(result).tolist() == [0.25, 0.75, 0.5]
    with pytest.raises(ValueError, match="score 'entropy'"):
        raw_score(result, "entropy")


def test_retention_balanced_accuracy_by_hand() -> None:
    correct = torch.tensor([True, False, True, True, False])
    labels = torch.tensor([1, 1, 0, 0, 0])
    uncertainty = torch.tensor([0.9, 0.8, 0.1, 0.2, 0.3])
    rows = retention_curve(correct, uncertainty, (0.0, 0.4), labels=labels)
    # all kept: malignant 1/2, benign 2/3; 2 most uncertain removed (both malignant): benign 2/3 only
    assert rows[0]["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert rows[1]["balanced_accuracy"] == pytest.approx(2 / 3) and rows[1]["accuracy"] == pytest.approx(2 / 3)


# --- tuning pieces ------------------------------------------------------------------------------------------

def test_window_counts_seed_summary_and_smallest_n_on_hand_tables() -> None:
    by_t = [{"t_from": 100 * i, "t_to": 100 * (i + 1), "auc": a}
            for i, a in enumerate([0.5, 0.62, 0.80, 0.83, 0.79, 0.60, nan, 0.82, 0.5, 0.5])]
    # best bin 3 (0.83); neighbours within 0.05: bins 2 and 4; bin 7 is as good but not adjacent
    assert ranking_t_window(by_t, "auc", 0.05) == (0.2, 0.5)
    assert ranking_t_window(by_t, "auc", 0.0) == (0.3, 0.4)
    assert ranking_t_window(by_t, "auc", 0.25) == (0.1, 0.6)  # stops at the NaN bin, skips bin 0 (0.5 < 0.58)
    assert ranking_trial_counts(50) == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 50]
    assert ranking_trial_counts(501)[-3:] == [256, 384, 501] and 24 in ranking_trial_counts(501)
    tables = [[{"n_trials": 4, "auc": 0.7}, {"n_trials": 8, "auc": 0.8}],
              [{"n_trials": 4, "auc": 0.6}, {"n_trials": 8, "auc": 0.9}]]
    summary = seed_summary(tables, ["auc"])
    assert [r["n_trials"] for r in summary] == [4, 8]
    assert summary[0]["auc"] == pytest.approx(0.65) and summary[0]["auc_sd"] == pytest.approx(math.sqrt(0.005))
    assert summary[1]["auc_by_seed"] == [0.8, 0.9]
    assert smallest_sufficient_n(summary, "auc", reference=0.86, tolerance=0.02) == 8
    assert smallest_sufficient_n(summary, "auc", reference=0.86, tolerance=0.25) == 4
    assert smallest_sufficient_n(summary, "auc", reference=0.95, tolerance=0.02) is None
    errors = torch.zeros((2, 2, 4))
    errors[1, :, 3] = nan
    timesteps = torch.tensor([[50, 150, 160, 170], [50, 150, 160, 170]])
    assert trials_in_window(timesteps, errors, (0.1, 0.2)) == 2  # image 2's t = 170 trial was not computed


def planted_runs(seeds: int, n: int = 40, trials: int = 100) -> tuple[list, torch.Tensor]:
    """Per-trial errors of `n` validation images, the same t for each image (t_k = 10 * (37 k mod 100) + 5: trial
    0 at t = 5, every bin of 100 steps holding 10 trials spread over the order). Planted: in t in [300, 500) the
    malignant class wins EVERY trial for every image (the vote share cannot rank there) but by a gap of 2 for
    malignant images against 0.5 for benign ones (the error gap ranks perfectly); elsewhere the gap is pure noise
    (SD 1). Each seed draws new noise."""
    labels = torch.tensor([1, 0, 0, 0] * (n // 4))
    order = torch.tensor([(37 * k) % 100 for k in range(trials)])
    timesteps = (10 * order + 5).expand(n, trials).clone()
    inside = (timesteps >= 300) & (timesteps < 500)
    runs = []
    for seed in range(seeds):
        g = torch.Generator().manual_seed(seed)
        benign = 1.0 + torch.rand((n, trials), generator=g)
        noise = torch.randn((n, trials), generator=g)
        planted = torch.where(labels[:, None] == 1, 2.0, 0.5) + 0.01 * noise
        gap = torch.where(inside, planted, noise)
        runs.append((torch.stack([benign, benign - gap], dim=1), timesteps))
    return runs, labels


def test_tuning_picks_the_planted_window_score_and_smallest_n_on_validation() -> None:
    runs, labels = planted_runs(seeds=3)
    params = DiffusionClassifierReportParams(classifier=DiffusionClassifierParams(n_trials=100), min_trials=2,
                                             t_tolerance=0.05, auc_tolerance=0.02)
    tuning = choose_ranking_vote(runs, labels, params)
    by_t = {(row["t_from"], row["t_to"]): row for row in tuning.by_t}
    assert by_t[(300, 400)]["error_gap_auc"] == 1.0 and by_t[(400, 500)]["error_gap_auc"] == 1.0
    assert by_t[(300, 400)]["vote_share_auc"] == 0.5  # malignant wins every trial of every image there
    assert all(row["error_gap_auc"] < 0.9 for key, row in by_t.items() if key not in {(300, 400), (400, 500)})
    # the window, the score and N: two in-window trials (the floor) already rank perfectly
    assert tuning.score == "error_gap" and tuning.classifier.t_range == (0.3, 0.5)
    assert tuning.classifier.n_trials == 2 and tuning.classifier.early_stop == "off"
    assert tuning.classifier.mode == "average"
    evidence = tuning.evidence
    assert evidence["validation_auc"] == 1.0 and evidence["validation_auc_sd"] == 0.0
    assert evidence["seeds"] == [0, 1, 2]
    # the reference: every trial of every seed, AUC of the mean gap, by hand with sklearn
    by_hand = [roc_auc_score(labels, (e[:, 0] - e[:, 1]).double().mean(1)) for e, _ in runs]
    assert evidence["reference_auc"] == pytest.approx(np.mean(by_hand))
    assert evidence["reference_auc_sd"] == pytest.approx(np.std(by_hand, ddof=1))
    assert 1.0 >= evidence["reference_auc"] - 0.02  # N = 2 is within the tolerance of the full vote
    # per-bin AUC is the mean over seeds of each seed's own table
    seed0 = auc_by_t(*runs[0], labels, (0, 1))
    assert tuning.by_t[0]["error_gap_auc_by_seed"][0] == seed0[0]["error_gap_auc"]
    # only the vote share allowed: the planted bins carry nothing for it; whatever noise window it finds, the rule
    # keeps the candidate with the fewest trials
    share_only = choose_ranking_vote(runs, labels, params.model_copy(update={"score": "vote_share"}))
    assert share_only.score == "vote_share" and share_only.classifier.mode == "majority"
    candidates = share_only.evidence["candidates"]
    assert {c["score"] for c in candidates} == {"vote_share"}
    assert share_only.classifier.n_trials == min(c["n_trials"] for c in candidates if c["n_trials"] is not None)


def test_tuning_falls_back_to_the_whole_range_and_names_a_one_class_validation() -> None:
    # no signal anywhere: the per-bin AUCs are noise, and a window of a few bins holds 10 trials per bin
    runs, labels = planted_runs(seeds=2)
    flat = []
    for i, (errors, timesteps) in enumerate(runs):
        errors = errors.clone()
        generator = torch.Generator().manual_seed(9 + i)
        errors[:, 1] = errors[:, 0] - torch.randn(errors[:, 0].shape, generator=generator)
        flat.append((errors, timesteps))
    params = DiffusionClassifierReportParams(classifier=DiffusionClassifierParams(n_trials=100), min_trials=64,
                                             auc_tolerance=0.0)
    tuning = choose_ranking_vote(flat, labels, params)
    # min_trials 64 > the 10-30 trials any window of bins holds: only the whole range is searched, where
    # N = 100 (the full vote itself) is always within tolerance 0
    assert all(c["t_range"] == [0.0, 1.0] for c in tuning.evidence["candidates"])
    assert tuning.classifier.t_range == (0.0, 1.0) and tuning.classifier.n_trials in (64, 96, 100)
    with pytest.raises(ValueError, match="tuning for AUC needs both classes"):
        choose_ranking_vote(runs, torch.zeros_like(labels), params)


# --- the paired bootstrap over images and trial seeds -------------------------------------------------------

def test_paired_bootstrap_over_images_and_seeds_equals_a_reference_loop() -> None:
    g = np.random.default_rng(4)
    labels = np.array([0, 1] * 6)
    a = labels + g.normal(0, 1.0, (3, 12))  # 3 trial seeds of a cheap score
    b = labels + g.normal(0, 0.6, (3, 12))  # the same seeds of the full vote
    out = paired_auc_bootstrap(labels, a, b, resamples=300, seed=7)
    point = np.mean([roc_auc_score(labels, a[s]) - roc_auc_score(labels, b[s]) for s in range(3)])
    assert out["point"] == pytest.approx(point)
    rng = np.random.default_rng(7)
    images, seeds = rng.integers(0, 12, (300, 12)), rng.integers(0, 3, (300, 3))
    draws = []
    for index, chosen in zip(images, seeds, strict=True):
        y = labels[index]
        if len(set(y)) < 2:
            continue
        draws.append(np.mean([roc_auc_score(y, a[s, index]) - roc_auc_score(y, b[s, index]) for s in chosen]))
    assert out["resamples"] == len(draws)
    assert out["se"] == pytest.approx(np.std(draws, ddof=1))
    assert out["low"] == pytest.approx(np.percentile(draws, 2.5)) and out["high"] == pytest.approx(
        np.percentile(draws, 97.5))
    # one seed: the image bootstrap of paired_auc_difference, draw for draw
    single = paired_auc_bootstrap(labels, a[:1], b[:1], resamples=300, seed=7)
    diff, se = paired_auc_difference(torch.tensor(labels), torch.tensor(a[0]), torch.tensor(b[0]), resamples=300,
                                     seed=7)
    assert single["point"] == pytest.approx(diff) and single["se"] == pytest.approx(se)
    assert paired_auc_bootstrap(np.zeros(12), a, b)["point"] is None
    with pytest.raises(ValueError, match="expected the same"):
        paired_auc_bootstrap(labels, a, b[:2])


# --- the benchmark's entry point, end to end on a tiny random DiT ------------------------------------------

def test_ranking_benchmark_runs_on_a_run_folder_and_writes_its_numbers(tmp_path) -> None:
    torch.manual_seed(0)
    model = create_dit("DiT-T/2", in_channels=SHAPE[0], input_size=SHAPE[1:], conditions=("label", "skin_tone"))
    with torch.no_grad():  # DiT zero-initialises its output layer; random weights make the classes differ
        model.final_linear.weight.normal_(0.0, 0.05)
        model.condition_embedders["label"].weight.normal_(0.0, 1.0)
    (tmp_path / "run").mkdir()
    save_dit(model, tmp_path / "run" / "dit_ema.safetensors", tmp_path / "run" / "dit_config.json")
    lesions = lesion_table({"val": 12, "test": 9})
    generator = torch.Generator().manual_seed(1)
    latents = {key: torch.randn(SHAPE, generator=generator).numpy() for key in lesions["isic_id"]}
    (tmp_path / "shards").mkdir()
    write_shards(tmp_path / "shards", lesions, latents)
    lesions.to_parquet(tmp_path / "lesions.parquet")
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, str(root / "scripts" / "bench_diffusion_classifier.py"),
               "--run-dir", str(tmp_path / "run"), "--shards", str(tmp_path / "shards"),
               "--lesions", str(tmp_path / "lesions.parquet"),
               "--full-trials", "16", "--tuning-seeds", "2", "--trial-seeds", "2", "--min-trials", "2",
               "--naive-images", "1", "--resamples", "50", "--out", str(tmp_path / "bench")]
    subprocess.run(command, check=True, cwd=root, capture_output=True, timeout=300)
    bench = json.loads((tmp_path / "bench" / "bench.json").read_text())
    goal, tuning = bench["goal"], bench["tuning"]
    assert bench["test_images"] == 9 and bench["trial_seeds"] == 2 and tuning["evidence"]["seeds"] == [0, 1]
    assert goal["score"] == tuning["score"] and goal["n_trials"] == tuning["n_trials"] >= 2
    assert goal["network_evals_per_image"] == 2 * goal["n_trials"]  # early stop off: every chosen trial
    same = goal[f"vs_full_vote_{goal['score']}"]
    assert same["point"] == pytest.approx(goal["auc"] - same["full_vote_auc"])
    assert same["low"] <= same["high"] and len(goal["auc_by_seed"]) == 2
    assert goal["point_within_tolerance"] == (goal["network_evals_per_image"] <= 50 and same["point"] >= -0.02)
    assert bench["speed"]["naive_votes_equal_full_vote"] == 1.0 and bench["speed"]["chosen_vs_naive"] > 0
    curve = bench["test_auc_vs_evaluations"][f"all t, {goal['score']}"]
    assert curve[-1]["n_trials"] == 16 and curve[-1]["minus_full_vote"] == 0.0  # all trials: the full vote itself
    assert (tmp_path / "bench" / "auc_vs_evaluations.png").is_file()
