"""Condition vocabularies of the conditional DiT (METHOD.md §2).

Diagnosis (`label`: benign 0 / malignant 1) is always a condition; skin-tone group (A 0, B 1, C 2) and
sex (female 0, male 1) are optional extra tokens. Each condition with K values has a null token, index
K, used for unknown values and for classifier-free-guidance dropout.
"""

from __future__ import annotations

CONDITIONS: dict[str, int] = {"label": 2, "skin_tone": 3, "sex": 2}
VOCABULARY: dict[str, dict[str, int]] = {
    "label": {"0": 0, "1": 1},
    "skin_tone": {"A": 0, "B": 1, "C": 2},
    "sex": {"female": 0, "male": 1},
}


def null_index(name: str) -> int:
    return CONDITIONS[name]


def encode(name: str, value: object) -> int:
    """A table value (0/1, "A"/"B"/"C", "female"/"male", None/"unknown") -> its token index."""
    return VOCABULARY[name].get(str(value), null_index(name))
