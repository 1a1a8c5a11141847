"""ITA thresholds: Chardon skin-colour categories, ITA -> Fitzpatrick type, Fitzpatrick -> fairness group.

Every table lists (lower bound, class) from light to dark; a class holds ITA > its lower bound, so a value
exactly on a threshold goes to the darker class (Kinyanjui's "VI <= 10", Del Bino 2013's "41 < light <= 55").
"""

from __future__ import annotations

import math

# Chardon et al. 1991, Int J Cosmet Sci 13:191; ranges as written by Del Bino & Bernerd 2013 (DATA.md §5):
# very light > 55, light 41-55, intermediate 28-41, tan 10-28, brown -30-10, dark below.
CHARDON_THRESHOLDS: tuple[tuple[float, str], ...] = (
    (55.0, "very_light"),
    (41.0, "light"),
    (28.0, "intermediate"),
    (10.0, "tan"),
    (-30.0, "brown"),
    (-math.inf, "dark"),
)

# "Kinyanjui" ITA -> Fitzpatrick thresholds (Kinyanjui et al. 2020, as implemented by Groh et al. 2021 and
# Bevan & Atapour-Abarghouei 2022; DATA.md §5): I > 55, II 41-55, III 28-41, IV 19-28, V 10-19, VI <= 10.
KINYANJUI_THRESHOLDS: tuple[tuple[float, int], ...] = (
    (55.0, 1),
    (41.0, 2),
    (28.0, 3),
    (19.0, 4),
    (10.0, 5),
    (-math.inf, 6),
)

# Fairness groups used across the pipeline (lesions table column `skin_tone_group`): A = I-II, B = III-IV,
# C = V-VI.
FITZPATRICK_GROUPS: dict[int, str] = {1: "A", 2: "A", 3: "B", 4: "B", 5: "C", 6: "C"}


def chardon_category(ita: float) -> str:
    """Chardon 1991 / Del Bino 2013 category of an ITA in degrees; "unknown" for NaN."""
    if math.isnan(ita):
        return "unknown"
    return next((name for lower, name in CHARDON_THRESHOLDS if ita > lower), "dark")


def fitzpatrick_from_ita(ita: float) -> int | None:
    """Fitzpatrick type 1..6 by the Kinyanjui thresholds; None for NaN."""
    if math.isnan(ita):
        return None
    return next((fst for lower, fst in KINYANJUI_THRESHOLDS if ita > lower), 6)


def fitzpatrick_group(fitzpatrick: int | None) -> str:
    """Fairness group: "A" (I-II), "B" (III-IV), "C" (V-VI); "unknown" for None."""
    if fitzpatrick is None:
        return "unknown"
    if fitzpatrick not in FITZPATRICK_GROUPS:
        raise ValueError(f"fitzpatrick: expected 1..6 or None, got {fitzpatrick!r}")
    return FITZPATRICK_GROUPS[fitzpatrick]
