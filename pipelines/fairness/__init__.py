"""Fairness scoring of skin-cancer classifiers (METHOD.md §5; the Class-N-Diff paper's Table III).

predictions.py  the predictions table all classifiers write, its validator, the ISIC CSV export
threshold.py    the decision threshold chosen on validation (Youden's J, ties -> lower; 0.5 fallback)
confusion.py    metric definitions from counts per distinct score (one sample or many)
bootstrap.py    seeded, vectorised, label-stratified bootstrap within a group
metrics.py      per-subgroup metrics with CIs, and the gaps across groups
report.py       the `fairness_report` stage; check.py the blocking `fairness_check`
"""
