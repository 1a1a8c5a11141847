"""The subgroup attributes a classifier is scored on, and the age bands derived from `age_approx`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

UNKNOWN = "unknown"

# attribute (a column of the scored table) -> short name used in metrics.json keys
SUBGROUP_ATTRIBUTES: dict[str, str] = {
    "skin_tone_group": "skin_tone",  # A = FST I-II, B = III-IV, C = V-VI (DDI's 12/34/56)
    "sex": "sex",
    "age_band": "age",
    "anatom_site_general": "site",
    "source": "source",
}

SKIN_TONE_GROUPS = ("A", "B", "C")
SKIN_TONE_NAMES = {"A": "FST I-II", "B": "FST III-IV", "C": "FST V-VI", UNKNOWN: "unknown"}


def age_band_labels(edges: Sequence[float]) -> list[str]:
    """Names of the bands [0, e1), [e1, e2), ..., [ek, inf) for whole-year ages: "<30", "30-44", ..., "75+"."""
    names = [f"<{_year(edges[0])}"]
    names += [f"{_year(lo)}-{_year(hi) - 1}" for lo, hi in zip(edges, edges[1:], strict=False)]
    return names + [f"{_year(edges[-1])}+"]


def age_bands(ages: pd.Series, edges: Sequence[float]) -> pd.Series:
    """The band of each age (left-closed: 45 is in "45-59"); NaN -> "unknown"."""
    labels = np.array(age_band_labels(edges), dtype=object)
    values = ages.to_numpy(dtype=float)
    bands = labels[np.searchsorted(np.asarray(edges, dtype=float), np.nan_to_num(values), side="right")]
    bands[np.isnan(values)] = UNKNOWN
    return pd.Series(bands, index=ages.index, name="age_band")


def add_age_band(frame: pd.DataFrame, edges: Sequence[float]) -> pd.DataFrame:
    return frame.assign(age_band=age_bands(frame["age_approx"], edges))


def group_order(attribute: str, values: Sequence[str], edges: Sequence[float]) -> list[str]:
    """Display order of an attribute's groups: skin tone A, B, C; age bands young to old; else sorted;
    "unknown" always last."""
    present = set(values)
    if attribute == "skin_tone_group":
        known = [g for g in SKIN_TONE_GROUPS if g in present]
    elif attribute == "age_band":
        known = [g for g in age_band_labels(edges) if g in present]
    else:
        known = sorted(v for v in present if v != UNKNOWN)
    return known + [UNKNOWN] if UNKNOWN in present else known


def _year(value: float) -> int:
    if not math.isclose(value, round(value)):
        raise ValueError(f"age band edge {value}: expected a whole number of years")
    return int(round(value))
