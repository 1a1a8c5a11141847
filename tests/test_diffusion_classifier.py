"""Diffusion classifier (METHOD.md §6): trials, vote, early stop, uncertainty, counterfactuals, report curves.

Test models are analytic: `ClassOracle` predicts the exact noise for data concentrated at one mean per
class, so the eps-error of class c is a(t)/(1-a(t)) * mean((z0 - mu_c)^2), smallest for the nearest mean.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import betabinom
from sklearn.metrics import roc_auc_score

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
from training.diffusion_classifier.comparison import (
    LabelledLatents,
    compare_votes,
    comparison_row,
    goal_met,
    markdown_table,
    paired_auc_difference,
)
from training.diffusion_classifier.counterfactual import ddim_timesteps
from training.diffusion_classifier.denoiser import error_space_weight
from training.diffusion_classifier.evaluation import (
    auc_by_t,
    auc_vs_trials,
    informative_t_range,
    ranking_scores,
    sufficient_trials,
    vote_accuracy_by_t,
)
from training.diffusion_classifier.plots import (
    plot_accuracy_vs_trials,
    plot_confidence_by_outcome,
    plot_retention_curve,
    render_counterfactual_gallery,
)
from training.diffusion_classifier.trials import (
    TrialNoise,
    bit_reversed_order,
    draw_trials,
    timesteps_from_fractions,
    trial_fractions,
)
from training.diffusion_classifier.votes import (
    decided_exact,
    flip_probability,
    majority,
    tally,
    vote_entropy,
    vote_share,
)

SCHEDULE = DiffusionSchedule()
nan = float("nan")
SHAPE = (2, 4, 4)


class ClassOracle(torch.nn.Module):
    """eps_hat(z, t, c) = (z - sqrt(a) mu_c) / sqrt(1 - a): exact for data at mu_c; mu_null for the null token.

    `wobble` adds a deterministic, class-dependent perturbation so votes are mixed; `gate` makes the
    classes identical (exact ties) for t >= gate. Returns 2C channels (eps, variance) like the DiT.
    """

    def __init__(self, means: torch.Tensor, null_mean: torch.Tensor | None = None, wobble: float = 0.0,
                 gate: int | None = None) -> None:
        super().__init__()
        table = torch.cat([means, (means.mean(0) if null_mean is None else null_mean)[None]])
        self.register_buffer("means", table)
        self.wobble, self.gate = wobble, gate
        self.calls: list[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]] = []
        self.record = False

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.record:
            self.calls.append((x.clone(), t.clone(), {k: v.clone() for k, v in cond.items()}))
        label = cond["label"]
        if self.gate is not None:
            label = torch.where(t >= self.gate, torch.full_like(label, self.means.shape[0] - 1), label)
        a = SCHEDULE.alphas_cumprod.to(x)[t].view(-1, 1, 1, 1)
        eps = (x - a.sqrt() * self.means[label]) / (1 - a).sqrt()
        if self.wobble:
            phase = 7.0 * label.view(-1, 1, 1, 1).to(x) + 0.013 * t.view(-1, 1, 1, 1).to(x)
            eps = eps + self.wobble * torch.sin(3.0 * x + phase)
        return torch.cat([eps, torch.zeros_like(eps)], dim=1)


def two_class_data(n: int, seed: int, spread: float = 0.3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    means = torch.stack([torch.full(SHAPE, -0.5), torch.full(SHAPE, 0.5)])
    labels = torch.randint(0, 2, (n,), generator=g)
    latents = means[labels] + spread * torch.randn((n, *SHAPE), generator=g)
    return means, labels, latents


def params(**overrides: object) -> DiffusionClassifierParams:
    return DiffusionClassifierParams(**({"n_trials": 32, "chunk_size": 4, "images_per_forward": 3} | overrides))


# --- trials ---------------------------------------------------------------------------------------------

def test_stratified_trials_every_power_of_two_prefix_covers_its_strata() -> None:
    assert bit_reversed_order(8).tolist() == [0, 4, 2, 6, 1, 5, 3, 7]
    fractions = trial_fractions(64, torch.Generator().manual_seed(0), stratified=True)
    for prefix in (1, 2, 4, 8, 16, 32, 64):
        strata = (fractions[:prefix] * prefix).floor().long()
        assert sorted(strata.tolist()) == list(range(prefix))
    assert torch.equal(timesteps_from_fractions(fractions, (0.0, 1.0), 1000), (fractions * 1000).floor().long())
    assert torch.equal(timesteps_from_fractions(fractions, (0.5, 1.0), 1000), 500 + (fractions * 500).floor().long())
    first = torch.stack([draw_trials(i, 501, SHAPE, seed=0, stratified=True, t_range=(0.0, 1.0),
                                     num_timesteps=1000).t[0] for i in range(40)])
    assert first.min() < 250 and first.max() > 750  # the random rotation: trial 0 is not always at t ~ 0
    ranged = draw_trials(3, 501, SHAPE, seed=1, stratified=True, t_range=(0.2, 0.6), num_timesteps=1000)
    assert ranged.t.min() >= 200 and ranged.t.max() < 600
    assert ranged.noise.shape == (501, *SHAPE)
    again = draw_trials(3, 501, SHAPE, seed=1, stratified=True, t_range=(0.2, 0.6), num_timesteps=1000)
    assert torch.equal(again.t, ranged.t) and torch.equal(again.noise, ranged.noise)
    lazy = TrialNoise(3, SHAPE, seed=1)  # chunks ask for trials in any order; each trial's eps is fixed
    assert torch.equal(torch.cat([lazy.take(9, 3), lazy.take(0, 9)]), ranged.noise[[9, 10, 11, *range(9)]])
    assert len(lazy.blocks) == 2 and torch.equal(TrialNoise(3, SHAPE, seed=1).take(5, 20), ranged.noise[5:25])
    iid = draw_trials(3, 501, SHAPE, seed=1, stratified=False, t_range=(0.0, 1.0), num_timesteps=1000)
    assert not torch.equal(iid.t, ranged.t) and iid.t.min() >= 0 and iid.t.max() < 1000


def test_every_class_sees_the_same_eps_and_t() -> None:
    means, _, latents = two_class_data(5, seed=0)
    model = ClassOracle(means)
    model.record = True
    p = params(n_trials=10, early_stop="off")
    classify_latents(model, latents, p, progress=False)
    seen: dict[tuple[int, int], list] = {}
    for x, t, cond in model.calls:
        for row in range(0, x.shape[0], 2):  # rows come as (trial, class) pairs
            assert cond["label"][row : row + 2].tolist() == [0, 1]
            assert torch.equal(x[row], x[row + 1]) and t[row] == t[row + 1]
            # which image and trial: match against each image's own trial plan
            for i in range(5):
                plan = draw_trials(i, 10, SHAPE, seed=p.seed, stratified=True, t_range=(0.0, 1.0), num_timesteps=1000)
                expected = SCHEDULE.add_noise(latents[i][None].expand(10, *SHAPE), plan.noise, plan.t)
                hits = [k for k in range(10) if plan.t[k] == t[row] and torch.allclose(expected[k], x[row])]
                if hits:
                    seen.setdefault((i, hits[0]), []).append(cond["label"][row : row + 2].tolist())
    assert sorted(seen) == [(i, k) for i in range(5) for k in range(10)]  # each trial exactly once
    # forwards hold at most images_per_forward x chunk_size x classes = 3 x 4 x 2 rows, 100 rows in all
    assert max(x.shape[0] for x, _, _ in model.calls) == 24 and sum(x.shape[0] for x, _, _ in model.calls) == 100
    assert all(v == [[0, 1]] for v in seen.values())


# --- the vote -------------------------------------------------------------------------------------------

def test_oracle_model_is_always_right_and_exact_stop_lands_where_the_count_says() -> None:
    means, labels, latents = two_class_data(12, seed=1)
    p = params(n_trials=501, chunk_size=8, images_per_forward=12)
    result = classify_latents(ClassOracle(means), latents, p, progress=False)
    assert torch.equal(result.predicted, labels)
    assert torch.equal(result.votes.argmax(1), labels) and (result.votes.max(1).values == result.trials_used).all()
    # unanimous votes: decided at 251 of 501; checks every 8 trials -> 256 trials, 512 network evaluations
    assert result.trials_used.tolist() == [256] * 12 and result.network_evals.tolist() == [512] * 12
    assert (result.vote_share == 1).all() and (result.vote_entropy == 0).all()
    assert torch.equal(result.mean_error.argmin(1), labels)
    assert torch.isnan(result.errors[:, :, 256:]).all() and not torch.isnan(result.errors[:, :, :256]).any()
    frame = result.to_frame([f"img{i}" for i in range(12)])
    assert frame["key"].tolist()[:2] == ["img0", "img1"] and frame["predicted"].tolist() == labels.tolist()
    assert (frame["votes_0"] + frame["votes_1"] == 256).all() and result.summary()["mean_network_evals"] == 512


def test_exact_stop_counts_follow_the_tie_rule_with_chunks_of_one() -> None:
    means, labels, latents = two_class_data(8, seed=2)
    result = classify_latents(ClassOracle(means), latents, params(n_trials=20, chunk_size=1, images_per_forward=1),
                              progress=False)
    # class 0 wins a 10:10 tie (lowest index) so is decided after 10 votes; class 1 needs 11
    assert result.trials_used.tolist() == [10 if y == 0 else 11 for y in labels.tolist()]


def test_batched_vote_equals_the_naive_loop() -> None:
    means, _, latents = two_class_data(6, seed=3, spread=0.8)
    model = ClassOracle(means, wobble=0.05)
    skin = torch.tensor([0, 1, 2, 3, 0, 1])
    p = params(n_trials=24, early_stop="off", chunk_size=5, images_per_forward=4)
    batched = classify_latents(model, latents, p, conditions={"skin_tone": skin}, progress=False)
    naive = classify_naive(model, latents, p, conditions={"skin_tone": skin}, progress=False)
    torch.testing.assert_close(batched.errors, naive.errors, rtol=1e-6, atol=1e-7)
    assert torch.equal(batched.votes, naive.votes) and torch.equal(batched.predicted, naive.predicted)
    assert torch.equal(batched.timesteps, naive.timesteps)
    assert 0 < batched.votes[:, 0].sum() < batched.votes.sum()  # the votes are mixed, not trivial
    assert naive.network_evals.tolist() == [48] * 6


def test_exact_early_stop_equals_the_full_vote_on_random_errors_including_ties() -> None:
    g = torch.Generator().manual_seed(0)
    checked = ties = 0
    for _ in range(400):
        k, n = int(torch.randint(2, 5, (1,), generator=g)), int(torch.randint(1, 16, (1,), generator=g))
        errors = torch.randint(0, 3, (1, k, n), generator=g).float()  # few values: many tied trials
        full = majority(tally(errors))
        votes = tally(errors)
        ties += int((votes == votes.max()).sum() > 1)
        for used in range(1, n + 1):
            partial = tally(errors[:, :, :used])
            if decided_exact(partial, torch.tensor([n - used])):
                assert majority(partial) == full, (errors, used)
                checked += 1
    assert checked > 300 and ties > 50


def test_exact_early_stop_equals_the_full_vote_end_to_end_with_fewer_evaluations() -> None:
    final_ties = 0
    for seed in range(8):
        n_trials = 16 + seed % 2  # even N: final 8:8 ties happen and go to class 0
        means, labels, latents = two_class_data(12, seed=10 + seed, spread=0.5)
        latents = latents - means[labels]  # centred between the two means: near the boundary, mixed votes
        model = ClassOracle(means, wobble=0.15, gate=700)  # t >= 700: exact ties, voted to class 0
        full = classify_latents(model, latents, params(n_trials=n_trials, early_stop="off", seed=seed), progress=False)
        early = classify_latents(model, latents, params(n_trials=n_trials, early_stop="exact", seed=seed,
                                                        chunk_size=3), progress=False)
        assert torch.equal(early.predicted, full.predicted)
        assert early.network_evals.sum() < full.network_evals.sum()
        assert (full.network_evals == 2 * n_trials).all()
        final_ties += int((full.votes[:, 0] == full.votes[:, 1]).sum())
    assert final_ties > 0


def test_predictive_stop_matches_the_beta_binomial_tail() -> None:
    assert flip_probability(torch.tensor([[0, 1]]), torch.tensor([1])).item() == pytest.approx(1 / 3)
    assert flip_probability(torch.tensor([[1, 0]]), torch.tensor([1])).item() == 0.0
    votes, remaining = torch.tensor([[9, 4], [3, 5]]), torch.tensor([30, 12])
    # leader 0 (9 votes) vs 4: flip iff 9 + X < 4 + 30 - X, X ~ BetaBin(30, 10, 5)
    expected0 = betabinom(30, 10, 5).cdf(12)  # X <= 12
    # leader 1 (5) vs class 0 (3): flip iff 5 + X < 3 + 12 - X or equal (class 0 wins ties): X <= 5
    expected1 = betabinom(12, 6, 4).cdf(5)
    np.testing.assert_allclose(flip_probability(votes, remaining).numpy(), [expected0, expected1], rtol=1e-9)

    means, labels, latents = two_class_data(4, seed=4)
    p = params(n_trials=501, early_stop="predictive", early_stop_risk=0.01, chunk_size=4, images_per_forward=4)
    result = classify_latents(ClassOracle(means), latents, p, progress=False)
    # unanimous votes: stop at the first multiple of 4 where P(flip) < 0.01
    stop = next(n for n in range(4, 502, 4) if betabinom(501 - n, n + 1, 1).cdf((501 - n - n - 1) // 2) < 0.01)
    assert result.trials_used.tolist() == [stop] * 4 and torch.equal(result.predicted, labels)


def test_votes_do_not_depend_on_the_error_space_but_averages_are_reweighted() -> None:
    means, _, latents = two_class_data(5, seed=5, spread=0.8)
    model = ClassOracle(means, wobble=0.1)
    runs = {s: classify_latents(model, latents, params(early_stop="off", error_space=s), progress=False)
            for s in ("eps", "x0", "v")}
    for space in ("x0", "v"):
        assert torch.equal(runs[space].votes, runs["eps"].votes)
        weight = error_space_weight(SCHEDULE, runs["eps"].timesteps, space)[:, None, :]
        torch.testing.assert_close(runs[space].errors, runs["eps"].errors * weight, rtol=1e-5, atol=0)


def test_average_mode_can_disagree_with_the_majority() -> None:
    errors = torch.tensor([[[1.0, 1.0, 10.0], [2.0, 2.0, 2.0]]])  # class 0 wins 2 of 3 trials, class 1 the mean
    rows = accuracy_vs_trials(errors, torch.tensor([0]), (0, 1), [2, 3])
    assert rows == [{"n_trials": 2, "majority_accuracy": 1.0, "majority_f1": 0.0, "average_accuracy": 1.0,
                     "average_f1": 0.0},
                    {"n_trials": 3, "majority_accuracy": 1.0, "majority_f1": 0.0, "average_accuracy": 0.0,
                     "average_f1": 0.0}]
    with pytest.raises(ValueError, match="early_stop='off'"):
        accuracy_vs_trials(errors, torch.tensor([0]), (0, 1), [4])
    with pytest.raises(ValueError, match="mode 'average'"):
        DiffusionClassifierParams(mode="average")


def test_accuracy_and_f1_vs_trials_on_a_hand_made_run() -> None:
    # 4 images, labels 1,1,0,0; trial errors (class0, class1) chosen so that prefixes differ
    e = torch.tensor([
        [[1.0, 5.0, 5.0], [2.0, 1.0, 1.0]],  # N=1 -> 0, N=3 -> 1 (majority and average)
        [[5.0, 5.0, 5.0], [1.0, 1.0, 1.0]],  # always 1
        [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]],  # always 0
        [[3.0, 3.0, 0.0], [1.0, 2.0, 9.0]],  # majority 1 at N=1,2,3; average 1, 1, 0
    ])
    rows = accuracy_vs_trials(e, torch.tensor([1, 1, 0, 0]), (0, 1), [1, 3])
    # N=1: predicted 0,1,0,1 -> acc 0.5, TP=1 FP=1 FN=1 -> F1 0.5
    assert rows[0] == {"n_trials": 1, "majority_accuracy": 0.5, "majority_f1": 0.5,
                       "average_accuracy": 0.5, "average_f1": 0.5}
    # N=3: majority 1,1,0,1 -> acc 0.75, F1 = 2*2/(2*2+1) = 0.8; average 1,1,0,0 -> 1.0
    assert rows[1] == {"n_trials": 3, "majority_accuracy": 0.75, "majority_f1": pytest.approx(0.8),
                       "average_accuracy": 1.0, "average_f1": 1.0}


def test_vote_accuracy_by_t_range_and_budget_on_hand_made_runs() -> None:
    # 2 images (labels 0, 1), 4 trials at t = 50, 450, 550, 950; NaN = trial not computed
    errors = torch.tensor([[[1.0, 1.0, 1.0, 2.0], [2.0, 2.0, 2.0, 1.0]],   # votes 0, 0, 0, 1
                           [[1.0, 2.0, 1.0, nan], [2.0, 1.0, 2.0, nan]]])  # votes 0, 1, 0, -
    timesteps = torch.tensor([[50, 450, 550, 950], [50, 450, 550, 950]])
    by_t = vote_accuracy_by_t(errors, timesteps, torch.tensor([0, 1]), (0, 1), bins=4)
    assert [(b["t_from"], b["t_to"], b["trials"]) for b in by_t] == [(0, 250, 2), (250, 500, 2), (500, 750, 2),
                                                                     (750, 1000, 1)]
    assert [b["trial_accuracy"] for b in by_t] == [0.5, 1.0, 0.5, 0.0]
    assert informative_t_range(by_t, tolerance=0.05) == (0.25, 0.5)
    assert informative_t_range(by_t, tolerance=0.5) == (0.0, 0.75)
    ablation = [{"n_trials": 4, "majority_accuracy": 0.70}, {"n_trials": 16, "majority_accuracy": 0.836},
                {"n_trials": 64, "majority_accuracy": 0.85}, {"n_trials": 501, "majority_accuracy": 0.84}]
    assert sufficient_trials(ablation, tolerance=0.005) == 16 and sufficient_trials(ablation, tolerance=0.0) == 64


def test_ranking_scores_on_a_hand_made_run_with_a_window_missing_trials_and_ties() -> None:
    # 2 images, 4 trials at t = 50, 250, 350, 850; (benign, malignant) errors; NaN = not computed
    errors = torch.tensor([[[1.0, 3.0, 2.0, 5.0], [2.0, 1.0, 2.0, 1.0]],    # malignant wins 1 and 3, tie at 2
                           [[4.0, 1.0, 1.0, nan], [1.0, 2.0, 0.5, nan]]])  # malignant wins 0 and 2
    timesteps = torch.tensor([[50, 250, 350, 850], [50, 250, 350, 850]])
    every = ranking_scores(errors, timesteps, 4)
    torch.testing.assert_close(every["vote_share"], torch.tensor([2 / 4, 2 / 3]))  # the tie is benign's
    torch.testing.assert_close(every["error_gap"], torch.tensor([(-1 + 2 + 0 + 4) / 4, (3 - 1 + 0.5) / 3]))
    assert every["trials"].tolist() == [4, 3]
    first_two = ranking_scores(errors, timesteps, 2)  # a prefix: the first N computed trials
    torch.testing.assert_close(first_two["error_gap"], torch.tensor([0.5, 1.0]))
    window = ranking_scores(errors, timesteps, 1, t_window=(0.2, 0.4))  # t in [200, 400): the first one, t = 250
    torch.testing.assert_close(window["vote_share"], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(window["error_gap"], torch.tensor([2.0, -1.0]))
    with pytest.raises(ValueError, match="no computed trial in t window"):
        ranking_scores(errors, timesteps, 4, t_window=(0.9, 1.0))  # image 2 has none there


def test_auc_vs_trials_and_by_t_equal_sklearn_on_random_errors() -> None:
    g = torch.Generator().manual_seed(11)
    labels = torch.tensor([0, 1] * 15)
    # malignant images: the malignant error lower by 0.6 on average, only for t < 500
    timesteps = torch.randint(0, 1000, (30, 64), generator=g)
    benign = torch.rand((30, 64), generator=g) + 1.0
    malignant = benign + torch.randn((30, 64), generator=g) - 0.6 * labels[:, None] * (timesteps < 500)
    errors = torch.stack([benign, malignant], dim=1)
    rows = auc_vs_trials(errors, timesteps, labels, (0, 1), [4, 64])
    for row, n in zip(rows, (4, 64), strict=True):
        first, last = errors[:, 0, :n].double(), errors[:, 1, :n].double()
        assert row["vote_share_auc"] == pytest.approx(roc_auc_score(labels, (last < first).double().mean(1)))
        assert row["error_gap_auc"] == pytest.approx(roc_auc_score(labels, (first - last).mean(1)))
        assert row["mean_trials"] == n
    by_t = auc_by_t(errors, timesteps, labels, (0, 1), bins=2)
    assert [(b["t_from"], b["t_to"]) for b in by_t] == [(0, 500), (500, 1000)]
    low = (timesteps < 500).double()
    gap_low = ((errors[:, 0] - errors[:, 1]).double() * low).sum(1) / low.sum(1)
    assert by_t[0]["error_gap_auc"] == pytest.approx(roc_auc_score(labels, gap_low))
    assert by_t[0]["error_gap_auc"] > 0.85 > 0.75 > by_t[1]["error_gap_auc"]  # the signal is where it was planted
    assert math.isnan(auc_vs_trials(errors, timesteps, torch.zeros(30), (0, 1), [4])[0]["error_gap_auc"])


# --- uncertainty ----------------------------------------------------------------------------------------

def test_vote_share_and_entropy_on_hand_made_votes() -> None:
    votes = torch.tensor([[3, 1, 0], [2, 2, 0], [4, 0, 0], [1, 2, 1]])
    torch.testing.assert_close(vote_share(votes), torch.tensor([0.75, 0.5, 1.0, 0.5]))
    h = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    torch.testing.assert_close(vote_entropy(votes), torch.tensor([h, 1.0, 0.0, 1.5]))
    assert majority(votes).tolist() == [0, 0, 0, 1]  # the 2:2 tie goes to the lowest index


def test_retention_curve_on_a_hand_made_example() -> None:
    correct = torch.tensor([1, 0, 1, 1, 0])
    uncertainty = torch.tensor([0.1, 0.9, 0.2, 0.5, 0.9])  # removal order: 1, 4 (tie, index order), 3, 2, 0
    rows = retention_curve(correct, uncertainty, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert [r["retained"] for r in rows] == [5, 4, 3, 2, 1, 0]
    assert [r["accuracy"] for r in rows[:5]] == [0.6, 0.75, 1.0, 1.0, 1.0] and math.isnan(rows[5]["accuracy"])
    # a tie straddling the cut: index order decides which of the two 0.9s goes first
    assert retention_curve(torch.tensor([0, 1]), torch.tensor([0.9, 0.9]), [0.5])[0]["accuracy"] == 1.0


def test_confidence_by_outcome() -> None:
    groups = confidence_by_outcome(torch.tensor([1, 1, 0, 0, 1]), torch.tensor([1, 0, 0, 1, 1]),
                                   torch.tensor([0.9, 0.6, 0.8, 0.55, 0.7], dtype=torch.float64))
    assert {k: v.tolist() for k, v in groups.items()} == {"TP": [0.9, 0.7], "TN": [0.8], "FP": [0.6], "FN": [0.55]}


# --- counterfactuals ------------------------------------------------------------------------------------

def test_counterfactual_reconstructs_the_input_with_an_exact_noise_model() -> None:
    _, _, latents = two_class_data(3, seed=6)
    factual = torch.tensor([0, 0, 0])

    def model(x: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """The exact noise of these very inputs: class 0 -> data at latents, 1 -> at -latents, null -> at 0."""
        inputs = latents.repeat(x.shape[0] // 3, 1, 1, 1)  # rows come in blocks of the 3 inputs
        sign = torch.tensor([1.0, -1.0, 0.0])[cond["label"]].view(-1, 1, 1, 1)
        mu = sign * inputs
        a = SCHEDULE.alphas_cumprod.to(x)[t].view(-1, 1, 1, 1)
        return (x - a.sqrt() * mu) / (1 - a).sqrt()

    p = DiffusionClassifierParams(guidance_scale=0.0, counterfactual_steps=20)
    out = explain_counterfactual(model, latents, factual, p, decode=lambda z: z)
    assert out.t_start == 300 and out.counterfactual_class.tolist() == [1, 1, 1]
    torch.testing.assert_close(out.factual, latents, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.counterfactual, -latents, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.heatmap, (2 * latents).abs().mean(1), rtol=0, atol=1e-5)
    # guidance w (Eq. 5): x0_hat is linear in eps, so the result is (1 + w) mu_c - w mu_null exactly
    guided = explain_counterfactual(model, latents, factual, DiffusionClassifierParams(guidance_scale=7.5),
                                    decode=lambda z: z)
    torch.testing.assert_close(guided.counterfactual, -8.5 * latents, rtol=0, atol=1e-4)
    torch.testing.assert_close(guided.factual, 8.5 * latents, rtol=0, atol=1e-4)


def test_difference_map_vanishes_for_an_unchanged_class_and_small_t() -> None:
    torch.manual_seed(0)
    net = torch.nn.Conv2d(SHAPE[0] + 1, 2 * SHAPE[0], 3, padding=1)

    def model(x: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        label = cond["label"].to(x).view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])
        return net(torch.cat([x, label], dim=1))

    _, _, latents = two_class_data(2, seed=7)
    to_rgb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])  # a linear 2 -> 3 channel "decoder", 2x upsampled
    decode = lambda z: torch.nn.functional.interpolate(torch.einsum("rc,bchw->brhw", to_rgb, z), scale_factor=2)  # noqa: E731
    p = DiffusionClassifierParams(heatmap_against="input", counterfactual_steps=5, guidance_scale=0.0)
    peaks = []
    for fraction in (0.3, 0.1, 0.01, 0.001):
        same = explain_counterfactual(model, latents, torch.tensor([1, 0]), p.model_copy(
            update={"counterfactual_t_fraction": fraction}), decode=decode, counterfactual_class=torch.tensor([1, 0]))
        assert same.factual.shape == (2, 3, 8, 8) and same.heatmap.shape == (2, 8, 8)
        peaks.append(float(same.heatmap.max()))
    # |input - cf| shrinks with t like sqrt(1 - a_t) |eps - eps_hat| (an untrained net: eps_hat is far off)
    assert peaks == sorted(peaks, reverse=True) and peaks[-1] < 0.02 * peaks[0]
    factual_ref = explain_counterfactual(model, latents, torch.tensor([1, 0]), p.model_copy(
        update={"heatmap_against": "factual", "counterfactual_t_fraction": 0.5}), decode=decode,
        counterfactual_class=torch.tensor([1, 0]))
    assert factual_ref.heatmap.abs().max() == 0  # same class, same noise, deterministic sampler
    other = explain_counterfactual(model, latents, torch.tensor([1, 0]), p.model_copy(
        update={"heatmap_against": "factual", "counterfactual_t_fraction": 0.5}), decode=decode)
    assert other.counterfactual_class.tolist() == [0, 1] and other.heatmap.max() > 0.01
    assert ddim_timesteps(300, 4) == [300, 200, 100, 0] and ddim_timesteps(2, 50) == [2, 1, 0]


# --- figures --------------------------------------------------------------------------------------------

def test_figures_are_written(tmp_path) -> None:
    e = torch.rand(6, 2, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    rows = accuracy_vs_trials(e, labels, (0, 1), [1, 2, 4, 8])
    votes = tally(e)
    correct = majority(votes) == labels
    paths = [plot_accuracy_vs_trials(rows, tmp_path / "fig2.png"),
             plot_retention_curve(retention_curve(correct, vote_entropy(votes)), tmp_path / "fig3.png"),
             plot_confidence_by_outcome(confidence_by_outcome(majority(votes), labels, vote_share(votes)),
                                        tmp_path / "fig9.png")]
    means, _, latents = two_class_data(3, seed=8)
    for rows_shown in (1, 3):
        explanation = explain_counterfactual(ClassOracle(means), latents[:rows_shown],
                                             torch.tensor([1, 1, 0][:rows_shown]),
                                             DiffusionClassifierParams(counterfactual_steps=3),
                                             decode=lambda z: z[:, :1])
        paths.append(render_counterfactual_gallery(explanation, tmp_path / f"fig4_{rows_shown}.png"))
    sizes = [Image.open(p).size for p in paths]
    assert all(w > 200 and h > 200 for w, h in sizes)
    assert sizes[4][0] == sizes[3][0] and sizes[4][1] > 2.5 * sizes[3][1]  # one row of 4 panels per image


# --- the speed/accuracy comparison (scripts/bench_diffusion_classifier.py) -----------------------------------


def test_comparison_row_pairs_each_image_with_the_full_vote() -> None:
    result = classify_latents(ClassOracle(torch.stack([torch.full(SHAPE, -0.5), torch.full(SHAPE, 0.5)])),
                              two_class_data(8, seed=5)[2], params(n_trials=8), progress=False)
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    reference = torch.tensor([0, 1, 1, 1, 0, 0, 0, 1])
    reference_share = torch.tensor([0.1, 0.9, 0.6, 0.7, 0.2, 0.65, 0.3, 0.8], dtype=torch.float64)
    row = comparison_row("x", result, 2.0, labels, (reference, reference_share))
    correct = (result.predicted == labels).double()
    paired = correct - (reference == labels).double()
    assert row["accuracy"] == float(correct.mean()) and row["images_per_s"] == 4.0
    assert row["agrees_with_full_vote"] == float((result.predicted == reference).double().mean())
    assert row["accuracy_minus_full_vote"] == pytest.approx(float(paired.mean()))
    assert row["difference_se"] == pytest.approx(float(paired.std()) / math.sqrt(8))  # sample std, n - 1
    share = (result.votes[:, 1] / result.votes.sum(1)).numpy()
    assert row["auc"] == pytest.approx(roc_auc_score(labels.numpy(), share))
    assert row["auc_minus_full_vote"] == pytest.approx(row["auc"] - 1.0)  # the reference ranks perfectly
    positive, shares = labels, torch.from_numpy(share)
    assert row["auc_difference_se"] == paired_auc_difference(positive, shares, reference_share)[1]
    # the paired bootstrap by hand with sklearn: the same resampled images for both scores
    indices, draws = np.random.default_rng(3).integers(0, 8, (200, 8)), []
    for index in indices:
        if len(set(labels.numpy()[index])) == 2:
            draws.append(roc_auc_score(labels.numpy()[index], share[index])
                         - roc_auc_score(labels.numpy()[index], reference_share.numpy()[index]))
    diff, se = paired_auc_difference(positive, shares, reference_share, resamples=200, seed=3)
    assert diff == pytest.approx(row["auc"] - 1.0) and se == pytest.approx(float(np.std(draws, ddof=1)))
    # the error gap: mean benign error minus mean malignant error over the computed trials, paired against
    # the reference's vote share
    gap = (result.errors[:, 0] - result.errors[:, 1]).double().nanmean(dim=1)  # NaN: trials not computed
    assert row["error_gap_auc"] == pytest.approx(roc_auc_score(labels.numpy(), gap.numpy()))
    assert row["error_gap_auc_minus_full_vote"] == pytest.approx(row["error_gap_auc"] - 1.0)
    assert row["error_gap_auc_difference_se"] == paired_auc_difference(positive, gap, reference_share)[1]
    same = comparison_row("x", result, 2.0, labels, (result.predicted, torch.from_numpy(share)))
    assert same["auc_minus_full_vote"] == 0.0 and same["auc_difference_se"] == 0.0
    assert same["accuracy_minus_full_vote"] == 0.0 and same["agrees_with_full_vote"] == 1.0
    assert row["evals_per_image"] == float(result.network_evals.double().mean())
    assert row["fewer_than_paper"] == pytest.approx(1002 / row["evals_per_image"])
    full = {"accuracy": 0.80}
    assert goal_met({"fewer_than_paper": 20.0, "accuracy": 0.795}, full)
    assert not goal_met({"fewer_than_paper": 19.9, "accuracy": 0.9}, full)
    assert not goal_met({"fewer_than_paper": 40.0, "accuracy": 0.785}, full)


def test_compare_votes_on_the_oracle_costs_and_agreement() -> None:
    """Data at the class means, classes tied for t >= 500: only trials below carry the class."""
    means, labels, latents = two_class_data(10, seed=6, spread=0.2)
    skin = torch.arange(10) % 4
    data = LabelledLatents(latents, labels, {"skin_tone": skin}, [100 + i for i in range(10)])
    model = ClassOracle(means, gate=500)
    base = params(n_trials=33, chunk_size=1, images_per_forward=4)
    rows, results = compare_votes(model, data, base, t_range=(0.0, 0.5), budget=3, risk=0.01, naive_images=3)
    names = [r["mode"][:4] for r in rows]
    assert names == ["(a) ", "(b) ", "(c) ", "(d) ", "(d')", "(e) ", "(e')"]
    full = results["b"]
    assert (full.network_evals == 66).all() and rows[1]["agrees_with_full_vote"] is None
    # naive = batched on its images; exact stop = the full vote, image by image
    assert torch.equal(results["a"].votes, full.votes[:3]) and rows[0]["images"] == 3
    assert torch.equal(results["c"].predicted, full.predicted) and rows[2]["agrees_with_full_vote"] == 1.0
    assert rows[2]["accuracy_minus_full_vote"] == 0.0 and rows[2]["evals_per_image"] < 66
    # tuned: 3 trials below the gate, each right: unanimous after 2 (exact stop, chunks of 1), all correct
    assert torch.equal(results["e'"].predicted, labels) and (results["e'"].trials_used == 2).all()
    assert rows[6]["evals_per_image"] == 4.0 and rows[6]["fewer_than_paper"] == pytest.approx(250.5)
    assert rows[6]["accuracy"] == 1.0 and rows[6]["goal_met"] and not rows[1]["goal_met"]
    assert rows[6]["accuracy_minus_full_vote"] == pytest.approx(1.0 - rows[1]["accuracy"])
    # (e') is the tuned vote itself: a direct call with the same trial seeds gives the same votes
    direct = classify_latents(model, latents, base.model_copy(update={"early_stop": "exact", "n_trials": 3,
                                                                         "t_range": (0.0, 0.5)}),
                              conditions={"skin_tone": skin}, image_ids=data.image_ids, progress=False)
    assert torch.equal(direct.votes, results["e'"].votes)
    table = markdown_table(rows)
    assert len(table) == 2 + 7 and table[-1].startswith("| (e') batched, exact early stop, N=3, t in [0.00, 0.50)")
    assert table[-1].endswith(f"| 1.000 | {rows[6]['auc_minus_full_vote']:+.3f} ± {rows[6]['auc_difference_se']:.3f} "
                              f"| {rows[6]['error_gap_auc']:.3f} | {rows[6]['error_gap_auc_minus_full_vote']:+.3f} ± "
                              f"{rows[6]['error_gap_auc_difference_se']:.3f} |")
