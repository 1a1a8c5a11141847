"""Name -> loader for every external test set (the rows of the Class-N-Diff paper's Table III)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pandas as pd

from pipelines.external_sets.asan import load_asan
from pipelines.external_sets.ddi import load_ddi
from pipelines.external_sets.derm7pt import load_derm7pt
from pipelines.external_sets.fitzpatrick17k import load_fitzpatrick17k
from pipelines.external_sets.mclass import load_mclass

# (root, data_root, **options) -> (records, rejects)
Loader = Callable[..., tuple[pd.DataFrame, pd.DataFrame]]

EXTERNAL_SETS: dict[str, Loader] = {
    "ddi": load_ddi,
    "fitzpatrick17k": load_fitzpatrick17k,
    "derm7pt_derm": partial(load_derm7pt, view="derm"),
    "derm7pt_clinic": partial(load_derm7pt, view="clinic"),
    "mclass_d": partial(load_mclass, benchmark="d"),
    "mclass_nd": partial(load_mclass, benchmark="nd"),
    "asan": load_asan,
}


def load_external_set(name: str, root: Path, data_root: Path, **options) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records, rejects) of the set `name`, read from `root` (a folder inside `data_root`).

    `options` go to the loader, e.g. `bevan_filter=True` for "fitzpatrick17k".
    """
    if name not in EXTERNAL_SETS:
        raise KeyError(f"unknown external set {name!r}; expected one of {sorted(EXTERNAL_SETS)}")
    return EXTERNAL_SETS[name](Path(root), Path(data_root), **options)
