"""Early stopping on validation AUC: stop after `patience` evaluations in a row without a gain > min_delta.

The best weights are those of the evaluation with the highest AUC (the first one on ties). The state is a
small dict, saved with every checkpoint so a resumed run stops where the uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass
class EarlyStopping:
    patience: int
    min_delta: float = 0.0
    best_auc: float = -math.inf
    best_step: int | None = None
    evaluations_without_gain: int = 0

    def update(self, step: int, auc: float) -> bool:
        """Record the validation AUC after `step` optimizer steps; True when this AUC is the new best.
        A NaN AUC never improves."""
        if not math.isnan(auc) and auc > self.best_auc + self.min_delta:
            self.best_auc, self.best_step, self.evaluations_without_gain = auc, step, 0
            return True
        self.evaluations_without_gain += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.evaluations_without_gain >= self.patience

    def state_dict(self) -> dict:
        state = asdict(self)
        state["best_auc"] = None if math.isinf(self.best_auc) else self.best_auc  # JSON has no -inf
        return state

    @classmethod
    def from_state(cls, state: dict) -> EarlyStopping:
        best = state["best_auc"]
        return cls(patience=state["patience"], min_delta=state["min_delta"],
                   best_auc=-math.inf if best is None else float(best), best_step=state["best_step"],
                   evaluations_without_gain=state["evaluations_without_gain"])
