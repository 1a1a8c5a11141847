"""Binary label policies: which normalised diagnoses count as malignant.

Class-N-Diff and DermDiff use melanoma-only (DATA.md §1.7), the default. The ISIC Archive taxonomy
puts BCC and SCC under "Malignant" and actinic keratosis under "Indeterminate", hence the two wider
policies. HAM10000's AKIEC mixes actinic keratosis with intraepithelial carcinoma, so it counts as
malignant only where AK does.
"""

from __future__ import annotations

POLICIES: dict[str, frozenset[str]] = {
    "melanoma": frozenset({"MEL"}),
    "melanoma_bcc_scc": frozenset({"MEL", "BCC", "SCC"}),
    "melanoma_bcc_scc_ak": frozenset({"MEL", "BCC", "SCC", "AK", "AKIEC"}),
}

# A coarse code that a later, finer diagnosis may replace without it being a label conflict
# (ISIC 2019 relabels HAM10000's 327 AKIEC as 130 AK + 197 SCC, DATA.md §1.3).
REFINES: dict[str, frozenset[str]] = {"AKIEC": frozenset({"AK", "SCC"})}


def label_of(diagnosis: str, policy: str) -> int:
    if policy not in POLICIES:
        raise ValueError(f"label policy {policy!r} not in {sorted(POLICIES)}")
    return int(diagnosis in POLICIES[policy])


def is_refinement(coarse: str, fine: str) -> bool:
    return fine in REFINES.get(coarse, frozenset())
