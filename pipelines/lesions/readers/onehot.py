"""One-hot ground truth (ISIC 2017 partially, 2018 Task 3, 2019 Task 1): floats stored as text.

DATA.md: the official files store `0.0` / `1.0`; copies on GitHub re-save ints (`0`/`1`), so both are
accepted. Exactly one class must be 1 — anything else is an `unknown_label` reject.
"""

from __future__ import annotations

ONE = {"1.0", "1", "1.00"}
ZERO = {"0.0", "0", "0.00"}


def decode_onehot(row: dict, classes: list[str]) -> tuple[str | None, str]:
    """(class name, raw text) for a one-hot row; class is None when the row is not a valid one-hot."""
    values = [str(row[c]).strip() for c in classes]
    raw = ",".join(values)
    if any(v not in ONE | ZERO for v in values):
        return None, raw
    hot = [c for c, v in zip(classes, values, strict=True) if v in ONE]
    return (hot[0], raw) if len(hot) == 1 else (None, raw)
