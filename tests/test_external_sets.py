"""External test-set loaders on tiny fixture layouts that copy the real headers and quirks (DATA.md §3)."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import pandas as pd
import pytest

from pipelines.external_sets import (
    EXTERNAL_COLUMNS,
    EXTERNAL_SETS,
    REJECT_COLUMNS,
    load_external_set,
    mclass_d_isic_ids,
)
from pipelines.external_sets import ddi as ddi_module
from pipelines.external_sets.external_table import ExternalTable
from pipelines.external_sets.schema import AccountingError

JPEG_PLACEHOLDER = b"\xff\xd8\xff\xe0placeholder"  # never decoded here: only existence is checked


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(JPEG_PLACEHOLDER)
    return path


def write_csv(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    return path


def by_id(frame: pd.DataFrame, column: str = "image_id") -> dict[str, dict]:
    return {row[column]: row for row in frame.to_dict("records")}


def fst(value: object) -> int | None:
    """The nullable Int64 `fitzpatrick` as a plain int or None."""
    return None if pd.isna(value) else int(value)


def reasons(rejects: pd.DataFrame) -> dict[str, str]:
    return dict(zip(rejects["isic_id"], rejects["reason"], strict=True))


def check_shape(records: pd.DataFrame, rejects: pd.DataFrame, rows_in: int) -> None:
    assert tuple(records.columns) == EXTERNAL_COLUMNS
    assert tuple(rejects.columns) == REJECT_COLUMNS
    assert len(records) + len(rejects) == rows_in
    assert records["label"].dtype == "int64"
    assert set(records["label"]) <= {0, 1}
    assert set(records["skin_tone_group"]) <= {"A", "B", "C", "unknown"}


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return tmp_path / "data"


# --- DDI (DATA.md §3.1) -------------------------------------------------------------------------------

DDI_LINES = [
    ",DDI_ID,DDI_file,skin_tone,malignant,disease",  # leading unnamed pandas index column
    "0,1,000001.png,56,TRUE,melanoma-in-situ",  # line 2
    "1,2,000002.png,12,FALSE,verruca-vulgaris",
    "2,3,000003.png,34,True,basal-cell-carcinoma",  # True/False spelling too
    "3,4,000004.png,34,false,seborrheic-keratosis",
    "4,5,000005.png,12,FALSE,melanocytic-nevi",  # image not on disk
    "5,6,000006.png,78,TRUE,melanoma",  # line 7: skin tone outside {12, 34, 56}
    "6,7,../../etc/passwd,56,FALSE,melanocytic-nevi",  # path traversal
    "7,9,000009.png,56,maybe,melanoma",  # malignant not TRUE/FALSE
    "8,10,000010.png,56",  # too few fields
]


def make_ddi(data_root: Path) -> Path:
    root = data_root / "external" / "ddi"
    write_csv(root / "ddi_metadata.csv", DDI_LINES)
    for n in (1, 2, 3, 4, 6, 9, 10):
        touch(root / f"{n:06d}.png")
    return root


def test_ddi_records_labels_and_groups(data_root: Path) -> None:
    records, rejects = load_external_set("ddi", make_ddi(data_root), data_root)
    check_shape(records, rejects, rows_in=9)
    rows = by_id(records)
    assert sorted(rows) == ["000001", "000002", "000003", "000004"]
    assert {k: r["label"] for k, r in rows.items()} == {"000001": 1, "000002": 0, "000003": 1, "000004": 0}
    assert {k: r["skin_tone_group"] for k, r in rows.items()} == {
        "000001": "C",
        "000002": "A",
        "000003": "B",
        "000004": "B",
    }
    assert records["fitzpatrick"].isna().all()  # DDI states only the pair of types
    assert rows["000001"]["image_path"] == "external/ddi/000001.png"
    assert rows["000001"]["diagnosis_raw"] == "melanoma-in-situ"
    assert rows["000001"]["source_file"] == "external/ddi/ddi_metadata.csv"
    assert rows["000001"]["source_row"] == 2
    assert set(records["modality"]) == {"clinical"}
    assert set(records["dataset"]) == {"ddi"}


def test_ddi_rejects_name_file_line_and_expectation(data_root: Path) -> None:
    _, rejects = load_external_set("ddi", make_ddi(data_root), data_root)
    assert reasons(rejects) == {
        "000005": "missing_image",
        "000006": "unknown_label",
        "passwd": "unsafe_path",
        "000009": "unknown_label",
        "000010": "malformed_row",
    }
    detail = by_id(rejects, "isic_id")
    assert detail["000006"]["detail"] == "ddi_metadata.csv line 7: skin_tone '78' not in {12, 34, 56}"
    assert detail["000006"]["source_row"] == 7
    assert (
        detail["000009"]["detail"] == "ddi_metadata.csv line 9: malignant 'maybe' not TRUE/FALSE (any case)"
    )
    assert detail["000010"]["detail"] == (
        "ddi_metadata.csv line 10: expected 6 fields (as in the header), found 4"
    )
    assert "'../../etc/passwd'" in detail["passwd"]["detail"]


def test_unsafe_names_are_never_touched_outside_root(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = data_root / "ddi"
    secret = touch(tmp_path / "secret.png")  # exists, so only the containment check can reject it
    write_csv(
        root / "ddi_metadata.csv",
        [DDI_LINES[0], "0,1,../../secret.png,12,FALSE,a", f"1,2,{secret},12,FALSE,b"],
    )
    touched: list[str] = []
    for module, name in ((os, "stat"), (os, "lstat"), (os, "listdir"), (os, "scandir"), (builtins, "open")):
        real = getattr(module, name)

        def spy(path=".", *args, _real=real, **kwargs):
            touched.append(os.fspath(path) if isinstance(path, (str, os.PathLike)) else "")
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    records, rejects = load_external_set("ddi", root, data_root)
    monkeypatch.undo()
    assert records.empty
    assert list(rejects["reason"]) == ["unsafe_path", "unsafe_path"]
    assert any(p.endswith("ddi_metadata.csv") for p in touched)  # the spy does see file-system calls
    assert not [p for p in touched if "secret" in p]


def test_symlink_escaping_root_is_unsafe(data_root: Path, tmp_path: Path) -> None:
    root = data_root / "ddi"
    write_csv(root / "ddi_metadata.csv", [DDI_LINES[0], "0,1,000001.png,12,FALSE,a"])
    (root / "000001.png").symlink_to(touch(tmp_path / "outside" / "real.png"))
    _, rejects = load_external_set("ddi", root, data_root)
    assert list(rejects["reason"]) == ["unsafe_path"]
    assert "symlink" in rejects["detail"][0]


def test_loader_that_loses_a_row_fails_loudly(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_take = ExternalTable.take
    calls = []

    def take_all_but_first(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            real_take(self, *args, **kwargs)

    monkeypatch.setattr(ddi_module.ExternalTable, "take", take_all_but_first)
    with pytest.raises(
        AccountingError, match=r"ddi: ddi_metadata.csv has 9 input rows but .* 3 records \+ 5 rejects"
    ):
        load_external_set("ddi", make_ddi(data_root), data_root)


def test_root_outside_data_root_is_refused(tmp_path: Path) -> None:
    root = make_ddi(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="not inside data root"):
        load_external_set("ddi", root, tmp_path / "data")


# --- Fitzpatrick17k (DATA.md §3.2) --------------------------------------------------------------------

FITZ_HEADER = (
    "md5hash,fitzpatrick_scale,fitzpatrick_centaur,label,nine_partition_label,three_partition_label,qc,url,"
    "url_alphanum"
)
FITZ_LINES = [
    FITZ_HEADER,
    "aaa1,3,3,melanoma,malignant melanoma,malignant,,https://x/a.jpg,httpsxajpg",
    "bbb2,-1,2,psoriasis,inflammatory,non-neoplastic,,https://x/b.jpg,httpsxbjpg",
    "ccc3,5,5,basal cell carcinoma,malignant epidermal,malignant,3 Wrongly labelled,https://x/c.jpg,c",
    "ddd4,1,1,seborrheic keratosis,benign epidermal,benign,,,",  # no url
    "eee5,6,6,actinic keratosis,malignant epidermal,malignant,,https://x/e.jpg,e",  # not downloaded
    "fff6,7,6,melanoma,malignant melanoma,malignant,,https://x/f.jpg,f",  # type 7
    "ggg7,2,2,melanoma,malignant melanoma,weird,,https://x/g.jpg,g",  # unknown partition
    "../../etc/passwd,2,2,melanoma,malignant melanoma,benign,,https://x/h.jpg,h",
    "hhh8,-1,3,dermatofibroma,benign dermal,benign,,https://x/i.jpg,i",  # FST unknown
]


def make_fitzpatrick17k(data_root: Path, lines: list[str] = FITZ_LINES) -> Path:
    root = data_root / "fitzpatrick17k"
    write_csv(root / "fitzpatrick17k.csv", lines)
    for md5 in ("aaa1", "bbb2", "ccc3", "ddd4", "fff6", "ggg7", "hhh8"):
        touch(root / "images" / f"{md5}.jpg")
    return root


def test_fitzpatrick17k_three_partition_target(data_root: Path) -> None:
    records, rejects = load_external_set("fitzpatrick17k", make_fitzpatrick17k(data_root), data_root)
    check_shape(records, rejects, rows_in=9)
    rows = by_id(records)
    assert {k: (r["label"], fst(r["fitzpatrick"]), r["skin_tone_group"]) for k, r in rows.items()} == {
        "aaa1": (1, 3, "B"),
        "bbb2": (0, None, "unknown"),  # -1 = unknown
        "ccc3": (1, 5, "C"),
        "ddd4": (0, 1, "A"),
        "hhh8": (0, None, "unknown"),
    }
    assert rows["aaa1"]["image_path"] == "fitzpatrick17k/images/aaa1.jpg"  # md5hash + ".jpg"
    assert rows["ccc3"]["diagnosis_raw"] == "basal cell carcinoma"
    assert reasons(rejects) == {
        "eee5": "missing_image",
        "fff6": "unknown_label",
        "ggg7": "unknown_label",
        "../../etc/passwd": "unsafe_path",
    }
    assert by_id(rejects, "isic_id")["fff6"]["detail"] == (
        "fitzpatrick17k.csv line 7: fitzpatrick_scale '7' not in {-1, 1..6}"
    )


def test_fitzpatrick17k_bevan_filter(data_root: Path) -> None:
    root = make_fitzpatrick17k(data_root)
    records, rejects = load_external_set("fitzpatrick17k", root, data_root, bevan_filter=True)
    check_shape(records, rejects, rows_in=9)
    assert list(records["image_id"]) == ["aaa1"]
    excluded = rejects[rejects["reason"] == "excluded_by_filter"]
    assert dict(zip(excluded["isic_id"], excluded["detail"], strict=True)) == {
        "bbb2": "fitzpatrick17k.csv line 3: Bevan filter: three_partition_label 'non-neoplastic'",
        "ccc3": "fitzpatrick17k.csv line 4: Bevan filter: qc '3 Wrongly labelled'",
        "ddd4": "fitzpatrick17k.csv line 5: Bevan filter: no url",
        "hhh8": "fitzpatrick17k.csv line 10: Bevan filter: Fitzpatrick type unknown (-1)",
    }


def test_fitzpatrick17k_april_2021_header(data_root: Path) -> None:
    old = [
        ",md5hash,fitzpatrick,label,nine_partition_label,three_partition_label,qc,url,url_alphanum",
        "0,aaa1,2,melanoma,malignant melanoma,malignant,,https://x/a.jpg,a",
        "1,bbb2,-1,psoriasis,inflammatory,non-neoplastic,,https://x/b.jpg,b",
    ]
    records, rejects = load_external_set("fitzpatrick17k", make_fitzpatrick17k(data_root, old), data_root)
    assert rejects.empty
    assert [fst(v) for v in records["fitzpatrick"]] == [2, None]
    assert list(records["skin_tone_group"]) == ["A", "unknown"]


# --- Derm7pt (DATA.md §3.3) ---------------------------------------------------------------------------

DERM7PT_HEADER = (
    "case_num,diagnosis,seven_point_score,pigment_network,streaks,pigmentation,regression_structures,"
    "dots_and_globules,blue_whitish_veil,vascular_structures,level_of_diagnostic_difficulty,elevation,"
    "location,sex,management,clinic,derm,case_id,notes"
)


def derm7pt_row(
    case: int, diagnosis: str, clinic: str, derm: str, sex: str = "female", notes: str = ""
) -> str:
    return (
        f"{case},{diagnosis},1,absent,absent,absent,absent,absent,absent,absent,low,flat,back,{sex},"
        f"excision,{clinic},{derm},,{notes}"
    )


def make_derm7pt(data_root: Path) -> Path:
    root = data_root / "derm7pt"
    release = root / "release_v0"
    lines = [
        DERM7PT_HEADER,
        derm7pt_row(1, "basal cell carcinoma", "NEL/Nel025.jpg", "NEL/Nel026.jpg", sex="male"),  # line 2
        derm7pt_row(2, "melanoma (in situ)", "Fgl/Fgl001.jpg", "Fgl/Fgl002.jpg"),
        derm7pt_row(3, "clark nevus", "A1l/A1l003c.jpg", "A1l/a1l003.jpg"),  # derm image absent
        derm7pt_row(4, "granuloma", "Fgl/Fgl004.jpg", "Fgl/Fgl004.jpg"),  # not a Derm7pt diagnosis
        derm7pt_row(5, "melanoma", "Fgl/Fgl005.jpg", "../../../etc/passwd"),
        # a quoted note over two lines: the next row must still report its real line (9)
        derm7pt_row(6, "blue nevus", "Fgl/Fgl006.jpg", "Fgl/Fgl006.jpg", notes='"clinic replaced,\nby derm"'),
        "7,clark nevus,1,absent",  # line 9, too few fields
    ]
    write_csv(release / "meta" / "meta.csv", lines, newline="\r\n")
    images = release / "images"
    touch(images / "NEL" / "Nel025.jpg")
    touch(images / "NEL" / "Nel026.JPG")  # mixed-case extension on disk
    for name in ("Fgl001.jpg", "Fgl002.jpg", "Fgl004.jpg", "Fgl005.jpg", "Fgl006.jpg"):
        touch(images / "Fgl" / name)
    touch(images / "A1l" / "A1l003c.jpg")
    return root


def test_derm7pt_dermoscopic_view(data_root: Path) -> None:
    records, rejects = load_external_set("derm7pt_derm", make_derm7pt(data_root), data_root)
    check_shape(records, rejects, rows_in=7)
    rows = by_id(records)
    assert {k: r["label"] for k, r in rows.items()} == {"1": 0, "2": 1, "6": 0}
    assert rows["1"]["image_path"] == "derm7pt/release_v0/images/NEL/Nel026.JPG"  # found case-insensitively
    assert rows["1"]["sex"] == "male"
    assert rows["2"]["diagnosis_raw"] == "melanoma (in situ)"
    assert rows["6"]["source_row"] == 7
    assert set(records["modality"]) == {"dermoscopic"}
    assert set(records["skin_tone_group"]) == {"unknown"}
    assert reasons(rejects) == {
        "3": "missing_image",
        "4": "unknown_label",
        "5": "unsafe_path",
        "7": "malformed_row",
    }
    assert by_id(rejects, "isic_id")["7"]["detail"].startswith(
        "release_v0/meta/meta.csv line 9: expected 19 fields"
    )


def test_derm7pt_clinical_view_and_release_as_root(data_root: Path) -> None:
    root = make_derm7pt(data_root) / "release_v0"
    records, rejects = load_external_set("derm7pt_clinic", root, data_root)
    check_shape(records, rejects, rows_in=7)
    assert {k: r["label"] for k, r in by_id(records).items()} == {"1": 0, "2": 1, "3": 0, "5": 1, "6": 0}
    assert by_id(records)["6"]["image_path"] == "derm7pt/release_v0/images/Fgl/Fgl006.jpg"
    assert set(records["modality"]) == {"clinical"}
    assert reasons(rejects) == {"4": "unknown_label", "7": "malformed_row"}
    assert by_id(rejects, "isic_id")["4"]["detail"] == (
        "meta/meta.csv line 5: diagnosis 'granuloma' is not one of the 20 Derm7pt diagnoses"
    )


# --- MClass (DATA.md §3.4) ----------------------------------------------------------------------------


def make_mclass(data_root: Path, tmp_path: Path) -> Path:
    root = data_root / "mclass"
    derm = root / "BenchmarkDermoscopic"
    touch(derm / "benign" / "ISIC_0000003.jpg")
    touch(derm / "benign" / "ISIC_0000004.jpg")
    touch(derm / "malign" / "ISIC_0000013.jpg")  # MClass-D spells it `malign`
    touch(derm / "unsorted" / "ISIC_0000099.jpg")  # not a class folder
    (derm / "malign" / "ISIC_0000050.jpg").symlink_to(touch(tmp_path / "outside.jpg"))
    (derm / "benign" / "ISIC_0000051.jpg").symlink_to(derm / "benign" / "gone.jpg")  # dangling
    touch(derm / "benign" / "Thumbs.db")  # side files and zip debris are not rows
    touch(derm / "benign" / ".DS_Store")
    touch(derm / "__MACOSX" / "benign" / "._ISIC_0000003.jpg")
    touch(root / "DermoscopicNameSource.xlsx")
    clinical = root / "BenchmarkClinical"
    touch(clinical / "benign" / "132357.jpg")
    touch(clinical / "malignant" / "151560-h.jpg")  # MClass-ND spells it `malignant`
    return root


def test_mclass_dermoscopic(data_root: Path, tmp_path: Path) -> None:
    records, rejects = load_external_set("mclass_d", make_mclass(data_root, tmp_path), data_root)
    check_shape(records, rejects, rows_in=6)
    rows = by_id(records)
    assert {k: r["label"] for k, r in rows.items()} == {
        "ISIC_0000003": 0,
        "ISIC_0000004": 0,
        "ISIC_0000013": 1,
    }
    assert rows["ISIC_0000013"]["image_path"] == "mclass/BenchmarkDermoscopic/malign/ISIC_0000013.jpg"
    assert rows["ISIC_0000013"]["diagnosis_raw"] == "malign"
    assert rows["ISIC_0000013"]["source_file"] == "mclass/BenchmarkDermoscopic"
    assert set(records["modality"]) == {"dermoscopic"}
    assert reasons(rejects) == {
        "ISIC_0000099": "unknown_label",
        "ISIC_0000050": "unsafe_path",
        "ISIC_0000051": "missing_image",
    }
    assert by_id(rejects, "isic_id")["ISIC_0000099"]["detail"] == (
        "BenchmarkDermoscopic/unsorted/ISIC_0000099.jpg: not inside one of the class folders "
        "['benign', 'malign', 'malignant']"
    )


def test_mclass_clinical(data_root: Path, tmp_path: Path) -> None:
    records, rejects = load_external_set("mclass_nd", make_mclass(data_root, tmp_path), data_root)
    check_shape(records, rejects, rows_in=2)
    assert {k: r["label"] for k, r in by_id(records).items()} == {"132357": 0, "151560-h": 1}
    assert set(records["modality"]) == {"clinical"}


def test_mclass_d_isic_ids_lists_every_file(data_root: Path, tmp_path: Path) -> None:
    ids = mclass_d_isic_ids(make_mclass(data_root, tmp_path))
    assert ids == {
        "ISIC_0000003",
        "ISIC_0000004",
        "ISIC_0000013",
        "ISIC_0000099",
        "ISIC_0000050",
        "ISIC_0000051",
    }


# --- ASAN (DATA.md §3.5) ------------------------------------------------------------------------------


def test_asan_biopsy_folders(data_root: Path) -> None:
    root = data_root / "asan"
    biopsy = root / "test-asan test" / "biopsy"
    touch(biopsy / "malignantmelanoma" / "mel1_001.JPG")  # upper-case extensions
    touch(biopsy / "pigmentednevus" / "nev1_002.JPG")
    touch(biopsy / "actinickeratosis" / "ak2_571.JPG")
    touch(biopsy / "psoriasis" / "pso_1.JPG")
    records, rejects = load_external_set("asan", root, data_root)
    check_shape(records, rejects, rows_in=4)
    rows = by_id(records)
    assert {k: r["label"] for k, r in rows.items()} == {"mel1_001": 1, "nev1_002": 0, "ak2_571": 0}
    assert rows["ak2_571"]["diagnosis_raw"] == "actinickeratosis"
    assert rows["ak2_571"]["image_path"] == "asan/test-asan test/biopsy/actinickeratosis/ak2_571.JPG"
    assert rows["ak2_571"]["source_row"] == 1  # first in the sorted listing of biopsy/
    assert rows["ak2_571"]["source_file"] == "asan/test-asan test/biopsy"
    assert reasons(rejects) == {"pso_1": "unknown_label"}


# --- registry and schema -----------------------------------------------------------------------------


def test_registry_names_and_unknown_name(tmp_path: Path) -> None:
    assert sorted(EXTERNAL_SETS) == sorted(
        ["ddi", "fitzpatrick17k", "derm7pt_derm", "derm7pt_clinic", "mclass_d", "mclass_nd", "asan"]
    )
    with pytest.raises(KeyError, match="unknown external set 'isic2018'"):
        load_external_set("isic2018", tmp_path, tmp_path)


def test_missing_metadata_file_names_the_layout(data_root: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ddi_metadata.csv: metadata CSV not found"):
        load_external_set("ddi", data_root / "ddi", data_root)


def test_reject_table_matches_the_isic_rejects() -> None:
    from pipelines.lesions import schema as lesions_schema

    assert REJECT_COLUMNS == lesions_schema.REJECT_COLUMNS
    assert {"missing_image", "unknown_label", "malformed_row", "unsafe_path"} <= set(
        lesions_schema.REJECT_REASONS
    )
