"""From per-trial denoising errors to a decision, a stopping rule and an uncertainty (paper Appendix A).

Tie rule, everywhere: the lowest class index wins. A trial's vote is `argmin` over classes (the paper's
`errors.argmin(dim=1)`, which returns the first minimum); the majority is `argmax` over vote counts (the
paper's `votes.argmax(dim=1)`, first maximum). The exact stopping rule uses the same rule, so an early
stop predicts what the full vote would have predicted.
"""

from __future__ import annotations

import torch


def trial_votes(errors: torch.Tensor) -> torch.Tensor:
    """(..., K) errors of one trial per class -> (...) index of the class with the smallest error."""
    return errors.argmin(dim=-1)


def tally(errors: torch.Tensor) -> torch.Tensor:
    """(B, K, N) errors of N computed trials -> (B, K) vote counts."""
    num_classes = errors.shape[1]
    winners = trial_votes(errors.transpose(1, 2))  # (B, N)
    return torch.nn.functional.one_hot(winners, num_classes).sum(dim=1)


def majority(votes: torch.Tensor) -> torch.Tensor:
    """(B, K) votes -> (B,) class index with the most votes; ties go to the lowest index."""
    return votes.argmax(dim=1)


def lowest_mean_error(mean_errors: torch.Tensor) -> torch.Tensor:
    """(B, K) mean errors -> (B,) class index with the smallest mean (Li et al.'s averaging; paper Eq. 4)."""
    return mean_errors.argmin(dim=1)


def decided_exact(votes: torch.Tensor, remaining: torch.Tensor) -> torch.Tensor:
    """True where no split of the `remaining` trials can change the majority (with its tie rule).

    The final count of the leader L is >= its count now and that of any other class j is <= its count
    now + remaining, so L stays the winner iff for every j: v_L > v_j + r, or v_L = v_j + r and L < j.
    """
    leader = majority(votes)
    lead = votes.gather(1, leader[:, None])  # (B, 1)
    margin = lead - (votes + remaining[:, None])
    index = torch.arange(votes.shape[1], device=votes.device)[None, :]
    safe = (margin > 0) | ((margin == 0) & (leader[:, None] < index)) | (index == leader[:, None])
    return safe.all(dim=1)


def flip_probability(votes: torch.Tensor, remaining: torch.Tensor) -> torch.Tensor:
    """P(the full vote's winner is not the current leader), for the predictive early stop.

    The leader L and the runner-up R are compared; each remaining trial votes L with an unknown rate
    p ~ Beta(v_L + 1, v_R + 1) (uniform prior updated by the votes so far), so the leader's share X of
    the r remaining trials is Beta-Binomial. The winner flips when v_L + X < v_R + r - X, or on equality
    when R < L. Exact for two classes; for more it gives every remaining trial to L or R.
    """
    votes = votes.double()
    leader = majority(votes)
    masked = votes.scatter(1, leader[:, None], float("-inf"))
    runner = masked.argmax(dim=1)
    a = votes.gather(1, leader[:, None])  # (B, 1)
    b = votes.gather(1, runner[:, None])
    r = remaining.double()[:, None]
    x = torch.arange(int(remaining.max().item()) + 1, dtype=torch.float64, device=votes.device)[None, :]
    valid = x <= r
    xs = torch.where(valid, x, torch.zeros_like(x))
    lgamma = torch.lgamma
    log_pmf = (lgamma(r + 1) - lgamma(xs + 1) - lgamma(r - xs + 1)
               + lgamma(xs + a + 1) + lgamma(r - xs + b + 1) - lgamma(r + a + b + 2)
               - (lgamma(a + 1) + lgamma(b + 1) - lgamma(a + b + 2)))
    final_leader, final_runner = a + xs, b + r - xs
    flips = (final_leader < final_runner) | ((final_leader == final_runner) & (runner < leader)[:, None])
    return (torch.exp(log_pmf) * (flips & valid)).sum(dim=1)


def vote_share(votes: torch.Tensor) -> torch.Tensor:
    """(B, K) votes -> (B,) fraction of the trials won by the predicted class."""
    votes = votes.double()
    return (votes.max(dim=1).values / votes.sum(dim=1)).float()


def vote_entropy(votes: torch.Tensor) -> torch.Tensor:
    """(B, K) votes -> (B,) entropy in bits of the vote distribution (the paper's Bernoulli over the N
    per-trial predictions, Section 2.3); 0 = unanimous, log2 K = evenly split."""
    p = votes.double() / votes.sum(dim=1, keepdim=True)
    terms = torch.where(p > 0, -p * torch.log2(p.clamp_min(1e-300)), torch.zeros_like(p))
    return terms.sum(dim=1).float()
