"""The generation plan's arithmetic on a hand-made lesions table, one exact table per policy."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipelines.generation_plan import GenerationPlanParams, compute_plan, real_counts, run_generation_plan

# train counts (label, skin tone, sex) -> rows; val rows and unknown skin tone must not count.
TRAIN = {(0, "A", "female"): 30, (0, "A", "male"): 20, (0, "B", "female"): 10, (0, "B", "male"): 10,
         (0, "C", "male"): 5, (1, "A", "female"): 6, (1, "A", "male"): 6, (1, "B", "male"): 3,
         (1, "C", "female"): 1}


def lesions_table() -> pd.DataFrame:
    rows = [{"split": "train", "label": label, "skin_tone_group": group, "sex": sex}
            for (label, group, sex), n in TRAIN.items() for _ in range(n)]
    rows += [{"split": "val", "label": 1, "skin_tone_group": "C", "sex": "male"}] * 7
    rows += [{"split": "train", "label": 1, "skin_tone_group": "unknown", "sex": "male"}] * 4
    rows += [{"split": "train", "label": 1, "skin_tone_group": "C", "sex": None}] * 2
    return pd.DataFrame(rows)


def plan_for(**params) -> dict[str, tuple[int, int, int]]:
    p = GenerationPlanParams(**params)
    plan = compute_plan(real_counts(lesions_table(), p.split, p.by_sex), p)
    return {row.cell: (row.real, row.target, row.to_generate) for row in plan.itertuples()}


def test_real_counts_per_cell():
    # malignant C: 1 female + 2 of unknown sex = 3; unknown skin tone and val rows in no cell
    assert plan_for(policy="none") == {
        "benign_A": (50, 50, 0), "benign_B": (20, 20, 0), "benign_C": (5, 5, 0),
        "malignant_A": (12, 12, 0), "malignant_B": (3, 3, 0), "malignant_C": (3, 3, 0)}


def test_equalize_raises_every_group_to_the_largest_groups_count():
    assert plan_for(policy="equalize") == {
        "benign_A": (50, 50, 0), "benign_B": (20, 50, 30), "benign_C": (5, 50, 45),
        "malignant_A": (12, 12, 0), "malignant_B": (3, 12, 9), "malignant_C": (3, 12, 9)}


def test_equalize_malignant_only_leaves_benign_alone():
    assert plan_for(policy="equalize", equalize_benign=False) == {
        "benign_A": (50, 50, 0), "benign_B": (20, 20, 0), "benign_C": (5, 5, 0),
        "malignant_A": (12, 12, 0), "malignant_B": (3, 12, 9), "malignant_C": (3, 12, 9)}


def test_equalize_by_sex_equalizes_within_each_sex():
    # malignant C of unknown sex (2 rows) leave the cells when by_sex
    plan = plan_for(policy="equalize", equalize_benign=False, by_sex=True)
    assert plan["malignant_A_female"] == (6, 6, 0)
    assert plan["malignant_B_female"] == (0, 6, 6)
    assert plan["malignant_C_female"] == (1, 6, 5)
    assert plan["malignant_B_male"] == (3, 6, 3)
    assert plan["malignant_C_male"] == (0, 6, 6)
    assert plan["benign_C_female"] == (0, 0, 0)
    assert sum(v[2] for v in plan.values()) == 20


def test_min_per_cell():
    assert plan_for(policy="min_per_cell", min_per_cell=10) == {
        "benign_A": (50, 50, 0), "benign_B": (20, 20, 0), "benign_C": (5, 10, 5),
        "malignant_A": (12, 12, 0), "malignant_B": (3, 10, 7), "malignant_C": (3, 10, 7)}


def test_ratio_rounds_half_up():
    # 0.5 x 5 = 2.5 -> 3 and 0.5 x 3 = 1.5 -> 2
    assert plan_for(policy="ratio", ratio=0.5) == {
        "benign_A": (50, 75, 25), "benign_B": (20, 30, 10), "benign_C": (5, 8, 3),
        "malignant_A": (12, 18, 6), "malignant_B": (3, 5, 2), "malignant_C": (3, 5, 2)}


@pytest.mark.parametrize("params", [{"policy": "none"}, {"policy": "min_per_cell", "min_per_cell": 0},
                                    {"policy": "ratio", "ratio": 0.0}])
def test_a_plan_asking_for_nothing_is_valid(params):
    assert all(v[2] == 0 for v in plan_for(**params).values())


def test_stage_writes_plan_and_report(tmp_path):
    lesions = tmp_path / "lesions.parquet"
    lesions_table().to_parquet(lesions)
    outputs = run_generation_plan(GenerationPlanParams(policy="equalize"), lesions, tmp_path / "plan")
    plan = pd.read_parquet(outputs.plan)
    assert list(plan.columns) == ["cell", "label", "skin_tone_group", "sex", "real", "target", "to_generate"]
    assert plan["to_generate"].tolist() == [0, 30, 45, 0, 9, 9]
    report = json.loads(outputs.report.read_text())
    assert report["to_generate"] == 93 and outputs.summary["to_generate"] == 93
    assert report["real_in_cells"] == 93 and report["real_outside_cells"] == 4  # the unknown skin tone rows
    assert "malignant_C" in report["table_markdown"]


def test_missing_column_is_named():
    with pytest.raises(ValueError, match="skin_tone_group"):
        real_counts(lesions_table().drop(columns="skin_tone_group"), "train", by_sex=False)
