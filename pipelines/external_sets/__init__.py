"""External test sets (DDI, Fitzpatrick17k, Derm7pt, MClass, ASAN) loaded into one table.

See docs/external_sets.md for where to get each set, its folder layout and the target used.
"""

from pipelines.external_sets.mclass import mclass_d_isic_ids
from pipelines.external_sets.registry import EXTERNAL_SETS, load_external_set
from pipelines.external_sets.schema import EXTERNAL_COLUMNS, REJECT_COLUMNS

__all__ = ["EXTERNAL_COLUMNS", "EXTERNAL_SETS", "REJECT_COLUMNS", "load_external_set", "mclass_d_isic_ids"]
