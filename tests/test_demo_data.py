"""The embedded demo dataset: real ISIC layouts byte for byte (DATA.md), seeded, with every quirk planted."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipelines.demo_data import DemoDataParams, DemoSummary, generate_demo_data

SMALL = DemoDataParams(seed=0, n_images=120, n_ddi=12)
REPO = Path(__file__).resolve().parents[1]

# Header line of every CSV (None = no header), and its line ending: DATA.md §1.1-1.5, §3.1, §4.
CSV_FORMATS = {
    "isic2016/ISBI2016_ISIC_Part3_Training_GroundTruth.csv": (None, b"\r\n"),
    "isic2016/ISBI2016_ISIC_Part3_Test_GroundTruth.csv": (None, b"\r\n"),
    **{
        f"isic2017/ISIC-2017_{s}_Part3_GroundTruth.csv": ("image_id,melanoma,seborrheic_keratosis", b"\r\n")
        for s in ("Training", "Validation", "Test_v2")
    },
    **{
        f"isic2017/ISIC-2017_{s}_Data/ISIC-2017_{s}_Data_metadata.csv": (
            "image_id,age_approximate,sex",
            b"\r\n",
        )
        for s in ("Training", "Validation", "Test_v2")
    },
    "isic2018/ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv": (
        "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC",
        b"\r\n",
    ),
    "isic2018/ISIC2018_Task3_Test_GroundTruth/ISIC2018_Task3_Test_GroundTruth.csv": (
        "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC",
        b"\n",
    ),
    "isic2018/HAM10000_metadata.csv": ("lesion_id,image_id,dx,dx_type,age,sex,localization", b"\n"),
    "isic2019/ISIC_2019_Training_GroundTruth.csv": ("image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK", b"\r\n"),
    "isic2019/ISIC_2019_Training_Metadata.csv": (
        "image,age_approx,anatom_site_general,lesion_id,sex",
        b"\r\n",
    ),
    "isic2020/ISIC_2020_Training_GroundTruth.csv": (
        "image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,benign_malignant,target",
        b"\r\n",
    ),
    "isic2020/ISIC_2020_Training_Duplicates.csv": ("image_name_1,image_name_2", b"\r\n"),
    "isic_archive/metadata.csv": (
        "isic_id,attribution,copyright_license,age_approx,anatom_site_general,diagnosis_1,diagnosis_2,"
        "diagnosis_3,fitzpatrick_skin_type,image_type,lesion_id,patient_id,sex",
        b"\n",
    ),
    "ddi/ddi_metadata.csv": (",DDI_ID,DDI_file,skin_tone,malignant,disease", b"\n"),
    "demo_truth.csv": ("image_path,isic_id,fitzpatrick,malignant,diagnosis", b"\n"),
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary]:
    out = tmp_path_factory.mktemp("demo") / "data"
    return out, generate_demo_data(SMALL, out)


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def read(root: Path, name: str, **kwargs) -> pd.DataFrame:
    return pd.read_csv(root / name, dtype=str, keep_default_na=False, **kwargs)


def truth(root: Path) -> pd.DataFrame:
    frame = read(root, "demo_truth.csv")
    return frame.astype({"fitzpatrick": int, "malignant": int})


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- determinism -------------------------------------------------------------------------------------------


def test_same_seed_same_bytes_even_in_another_process(demo, tmp_path):
    root, _ = demo
    # Another interpreter with another string-hash seed: no set/dict ordering may leak into the bytes.
    code = (
        "import sys; from pathlib import Path\n"
        "from pipelines.demo_data import DemoDataParams, generate_demo_data\n"
        f"params = DemoDataParams.model_validate_json({SMALL.model_dump_json()!r})\n"
        "generate_demo_data(params, Path(sys.argv[1]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "again")], check=True, env=env, cwd=REPO)
    assert tree_hashes(tmp_path / "again") == tree_hashes(root)


def test_other_seed_other_data(demo, tmp_path):
    root, _ = demo
    generate_demo_data(SMALL.model_copy(update={"seed": 1}), tmp_path / "seed1")
    first, other = tree_hashes(root), tree_hashes(tmp_path / "seed1")
    assert first["demo_truth.csv"] != other["demo_truth.csv"]
    assert other["ddi/000001.png"] != first["ddi/000001.png"]


def test_writes_only_its_outputs_and_replaces_them(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("not ours")
    (out / "isic2016").mkdir()
    (out / "isic2016" / "stale.jpg").write_bytes(b"old run")
    summary = generate_demo_data(DemoDataParams(n_images=60, n_ddi=6), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert (out / "keep.txt").read_text() == "not ours"
    assert not (out / "isic2016" / "stale.jpg").exists()
    assert not (out / ".demo_data_staging").exists()
    assert summary.files["demo_truth.csv"] == summary.n_image_files == len(truth(out))


# --- formats -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CSV_FORMATS))
def test_csv_header_and_line_endings(demo, name):
    root, summary = demo
    header, newline = CSV_FORMATS[name]
    data = (root / name).read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    lines = data.split(newline)
    if newline == b"\r\n":
        assert data.count(b"\n") == data.count(b"\r\n")
    else:
        assert b"\r" not in data
    if header is not None:
        assert lines[0].decode() == header
    trailing = name != "isic2016/ISBI2016_ISIC_Part3_Training_GroundTruth.csv"
    assert data.endswith(newline) == trailing
    n_rows = len(lines) - (header is not None) - trailing
    assert summary.files[name] == n_rows > 0


def test_isic2016_rows_have_no_header_and_their_own_encodings(demo):
    root, _ = demo
    train = (root / "isic2016/ISBI2016_ISIC_Part3_Training_GroundTruth.csv").read_bytes().decode()
    test = (root / "isic2016/ISBI2016_ISIC_Part3_Test_GroundTruth.csv").read_bytes().decode()
    assert all(re.fullmatch(r"ISIC_\d{7},(benign|malignant)", row) for row in train.split("\r\n"))
    assert all(re.fullmatch(r"ISIC_\d{7},(0\.0|1\.0)", row) for row in test.split("\r\n")[:-1])


def test_onehot_files_hold_float_text_with_exactly_one_class(demo):
    root, _ = demo
    for name in (
        "isic2018/ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv",
        "isic2019/ISIC_2019_Training_GroundTruth.csv",
    ):
        values = read(root, name).set_index("image")
        assert set(np.unique(values.to_numpy())) == {"0.0", "1.0"}
        assert (values.astype(float).sum(axis=1) == 1).all()
    gt2019 = read(root, "isic2019/ISIC_2019_Training_GroundTruth.csv")
    assert (gt2019["UNK"] == "0.0").all()
    meta2019 = read(root, "isic2019/ISIC_2019_Training_Metadata.csv")
    assert list(meta2019["image"]) == list(gt2019["image"])  # same row order (DATA.md §1.4)
    assert meta2019["lesion_id"].str.fullmatch(r"((BCN|HAM|MSK4)_\d{7})?").all()
    assert {"BCN", "HAM", "MSK4", ""} == set(meta2019["lesion_id"].str.split("_").str[0])


def test_isic2020_target_is_melanoma_and_ages_are_multiples_of_five(demo):
    root, _ = demo
    gt = read(root, "isic2020/ISIC_2020_Training_GroundTruth.csv")
    assert ((gt["target"] == "1") == (gt["diagnosis"] == "melanoma")).all()
    assert ((gt["benign_malignant"] == "malignant") == (gt["target"] == "1")).all()
    ages = gt.loc[gt["age_approx"] != "", "age_approx"].astype(int)
    assert (ages % 5 == 0).all()
    assert gt["patient_id"].str.fullmatch(r"IP_\d{7}").all()
    assert gt.groupby("patient_id").size().max() >= 2  # several images per patient
    assert "unknown" in set(gt["diagnosis"]) and set(gt["anatom_site_general_challenge"]) & {"torso"}


def test_ham10000_metadata_and_isic2018_agree(demo):
    root, _ = demo
    ham = read(root, "isic2018/HAM10000_metadata.csv")
    assert set(ham["dx"]) <= {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}
    assert ham["lesion_id"].str.fullmatch(r"HAM_\d{7}").all()
    assert ham["age"].str.fullmatch(r"(\d+\.0)?").all()
    assert ham["lesion_id"].value_counts().max() >= 2  # several images of one lesion
    gt = read(root, "isic2018/ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv")
    onehot = gt.set_index("image").astype(float).idxmax(axis=1).str.lower()
    assert (ham.set_index("image_id")["dx"] == onehot.loc[ham["image_id"]].to_numpy()).all()


def test_archive_and_ddi_layouts(demo):
    root, _ = demo
    archive = read(root, "isic_archive/metadata.csv")
    assert set(archive["diagnosis_1"]) <= {"Benign", "Malignant", "Indeterminate"}
    assert set(archive["fitzpatrick_skin_type"]) <= {"I", "II", "III", "IV", "V", "VI"}
    assert all((root / "isic_archive" / f"{i}.jpg").is_file() for i in archive["isic_id"])
    assert (root / "isic_archive/attribution.txt").is_file() and (
        root / "isic_archive/licenses/CC-BY.txt"
    ).is_file()
    ddi = pd.read_csv(root / "ddi/ddi_metadata.csv", index_col=0)
    assert list(ddi.index) == list(range(len(ddi)))
    assert set(ddi["malignant"]) <= {True, False} and ddi["malignant"].any()
    assert ddi["disease"].str.fullmatch(r"[a-z()\-]+").all()
    assert all((root / "ddi" / name).is_file() for name in ddi["DDI_file"])


# --- content -----------------------------------------------------------------------------------------------


def test_melanoma_rate_over_unique_images(demo):
    root, _ = demo
    images = truth(root)
    unique = images[images["isic_id"] != ""].drop_duplicates("isic_id")
    assert 0.08 <= unique["malignant"].mean() <= 0.25
    assert ((unique["diagnosis"] == "MEL") == (unique["malignant"] == 1)).all()


def test_skin_types_skewed_light_in_isic_years_balanced_in_ddi(demo):
    root, _ = demo
    images = truth(root)
    challenge = images[images["image_path"].str.match(r"isic20(16|17|18|19|20)/")].drop_duplicates("isic_id")
    archive = images[images["image_path"].str.startswith("isic_archive/")]
    dark = challenge["fitzpatrick"] >= 5
    assert dark.mean() < 0.15
    assert challenge["fitzpatrick"].isin([1, 2]).mean() > 0.45
    assert (archive["fitzpatrick"] >= 5).mean() > dark.mean()  # FST-labelled pulls carry the dark skin
    ddi = pd.read_csv(root / "ddi/ddi_metadata.csv", index_col=0)
    counts = ddi["skin_tone"].value_counts()
    assert sorted(counts.index) == [12, 34, 56] and counts.nunique() == 1
    ddi_truth = images[images["image_path"].str.startswith("ddi/")].set_index("image_path")["fitzpatrick"]
    tone = {1: 12, 2: 12, 3: 34, 4: 34, 5: 56, 6: 56}
    assert [tone[ddi_truth[f"ddi/{name}"]] for name in ddi["DDI_file"]] == list(ddi["skin_tone"])


def test_truth_has_one_row_per_image_file(demo):
    root, summary = demo
    files = {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.suffix in (".jpg", ".png") and not p.name.endswith("_superpixels.png")
    }
    images = truth(root)
    assert sorted(images["image_path"]) == sorted(files)
    assert len(images) == summary.n_image_files
    assert images["fitzpatrick"].between(1, 6).all()
    isic = images[images["isic_id"] != ""]
    assert isic.apply(lambda r: r["image_path"].split("/")[-1].startswith(r["isic_id"]), axis=1).all()
    # An image re-released in several years has one truth: same type, same label everywhere.
    assert (isic.groupby("isic_id")[["fitzpatrick", "malignant", "diagnosis"]].nunique() == 1).all().all()


# --- planted quirks ----------------------------------------------------------------------------------------


def test_same_bytes_across_years(demo):
    root, summary = demo
    [reused_16_19] = summary.quirks_of("same_image_2016_2019")
    [reused_18_19] = summary.quirks_of("same_image_2018_2019")
    [reused_16_17] = summary.quirks_of("same_image_2016_2017")
    assert len(reused_16_17.ids) >= 3 and len(reused_16_19.ids) >= 3
    by_path = truth(root).groupby("isic_id")["image_path"].apply(list)
    for isic_id in reused_16_19.ids + reused_18_19.ids + reused_16_17.ids:
        paths = by_path[isic_id]
        assert len(paths) >= 2
        assert len({sha(root / p) for p in paths}) == 1, paths
    meta = read(root, "isic2019/ISIC_2019_Training_Metadata.csv").set_index("image")
    assert meta.loc[list(reused_18_19.ids), "lesion_id"].str.startswith("HAM_").all()
    [reexport] = summary.quirks_of("archive_reexport")
    for isic_id in reexport.ids:  # the archive export re-serves a 2020 image: same id, same bytes
        assert sha(root / f"isic_archive/{isic_id}.jpg") == sha(root / f"isic2020/train/{isic_id}.jpg")


def test_downsampled_names_in_2019(demo):
    root, summary = demo
    [quirk] = summary.quirks_of("downsampled_name")
    gt = read(root, "isic2019/ISIC_2019_Training_GroundTruth.csv")
    named = {i.removesuffix("_downsampled") for i in gt["image"] if i.endswith("_downsampled")}
    assert named == set(quirk.ids) and named
    assert named & set(summary.quirks_of("same_image_2016_2019")[0].ids)
    for isic_id in named:
        assert (root / f"isic2019/ISIC_2019_Training_Input/{isic_id}_downsampled.jpg").is_file()
        assert not (root / f"isic2019/ISIC_2019_Training_Input/{isic_id}.jpg").exists()


def test_label_conflict_benign_in_2016_melanoma_in_2019(demo):
    root, summary = demo
    [quirk] = summary.quirks_of("label_conflict")
    [isic_id] = quirk.ids
    train16 = read(
        root, "isic2016/ISBI2016_ISIC_Part3_Training_GroundTruth.csv", header=None, names=["image", "y"]
    )
    assert train16.set_index("image").loc[isic_id, "y"] == "benign"
    gt17 = read(root, "isic2017/ISIC-2017_Training_Part3_GroundTruth.csv").set_index("image_id")
    assert gt17.loc[isic_id, "melanoma"] == "1.0"
    gt19 = read(root, "isic2019/ISIC_2019_Training_GroundTruth.csv")
    gt19["image"] = gt19["image"].str.removesuffix("_downsampled")
    assert gt19.set_index("image").loc[isic_id, "MEL"] == "1.0"


def test_akiec_in_2018_is_ak_or_scc_in_2019(demo):
    root, summary = demo
    [quirk] = summary.quirks_of("akiec_relabel")
    gt18 = read(root, "isic2018/ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv")
    gt19 = read(root, "isic2019/ISIC_2019_Training_GroundTruth.csv").set_index("image")
    for isic_id in quirk.ids:
        assert gt18.set_index("image").loc[isic_id, "AKIEC"] == "1.0"
        assert "1.0" in (gt19.loc[isic_id, "AK"], gt19.loc[isic_id, "SCC"])


def test_corrupt_jpeg_is_listed_and_fails_to_decode(demo):
    root, summary = demo
    [quirk] = summary.quirks_of("corrupt_image")
    [path] = quirk.files
    gt = read(root, "isic2019/ISIC_2019_Training_GroundTruth.csv")
    assert Path(path).stem in set(gt["image"])
    with pytest.raises(OSError):
        with Image.open(root / path) as image:
            image.load()


def test_missing_image_row(demo):
    root, summary = demo
    [quirk] = summary.quirks_of("missing_image")
    [isic_id] = quirk.ids
    assert isic_id in set(read(root, "isic2020/ISIC_2020_Training_GroundTruth.csv")["image_name"])
    assert not (root / f"isic2020/train/{isic_id}.jpg").exists()
    assert isic_id not in set(truth(root)["isic_id"])


def test_isic2020_duplicate_pairs(demo):
    root, summary = demo
    pairs = summary.quirks_of("isic2020_duplicate_pair")
    assert 2 <= len(pairs)
    listed = read(root, "isic2020/ISIC_2020_Training_Duplicates.csv")
    assert sorted(map(tuple, listed.to_numpy().tolist())) == sorted(q.ids for q in pairs)
    gt = read(root, "isic2020/ISIC_2020_Training_GroundTruth.csv").set_index("image_name")
    for quirk in pairs:
        first, second = quirk.ids
        assert gt.loc[first, "patient_id"] == gt.loc[second, "patient_id"]
        assert gt.loc[first, "target"] == gt.loc[second, "target"]
        a, b = (root / f"isic2020/train/{i}.jpg" for i in (first, second))
        assert sha(a) != sha(b)
        pixels = [np.asarray(Image.open(p), dtype=float) for p in (a, b)]
        assert np.abs(pixels[0] - pixels[1]).mean() < 15  # near-identical, not identical


def test_side_files_readers_must_skip(demo):
    root, summary = demo
    [quirk] = summary.quirks_of("superpixels_png")
    assert quirk.ids
    assert all(next(root.glob(f"isic2017/*/{i}_superpixels.png"), None) for i in quirk.ids)
    [extra] = summary.quirks_of("non_image_files")
    assert all((root / f).is_file() for f in extra.files)


def test_params_reject_bad_values():
    with pytest.raises(ValueError, match="Fitzpatrick"):
        DemoDataParams(fitzpatrick_weights=(1, 0, 0, 0, 0, -1))
    with pytest.raises(ValueError, match="image_sizes"):
        DemoDataParams(image_sizes={"isic2016": (64, 48)})


def test_ddi_melanoma_share_sets_which_malignant_rows_look_malignant():
    from pipelines.demo_data.layouts import DDI_MALIGNANT
    from pipelines.demo_data.params import DemoDataParams
    from pipelines.demo_data.source_images import SourcePlanner

    def counts(share: float) -> tuple[int, int]:
        images = SourcePlanner(DemoDataParams(n_ddi=60, ddi_malignant_rate=0.4, ddi_melanoma_share=share)).ddi()
        malignant = [im for im in images if im.detail in DDI_MALIGNANT]
        return len(malignant), sum(im.melanoma for im in malignant)

    assert counts(0.5) == (24, 12)  # 8 malignant per skin-tone group, half of them melanomas (rendered atypical)
    assert counts(1.0) == (24, 24)  # every malignant row is a melanoma: all carry the renderer's malignant cues
    assert counts(0.0) == (24, 0)
