"""Hand-made ISIC layouts with one planted bad input per reject reason (shared by several tests)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.config import LesionsParams, Params, SourceParams, SplitParams


def jpeg(seed: int, size: tuple[int, int] = (96, 72)) -> bytes:
    """A skin-coloured image with a dark lesion in the middle; `seed` changes the bytes."""
    rng = np.random.default_rng(seed)
    image = np.empty((size[1], size[0], 3), np.uint8)
    image[:] = (220, 170, 140)
    yy, xx = np.mgrid[: size[1], : size[0]]
    image[(yy - size[1] / 2) ** 2 + (xx - size[0] / 2) ** 2 < 15**2] = (90, 50, 30)
    image = np.clip(image + rng.integers(-6, 7, image.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write(path: Path, text: str, crlf: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", "\r\n").encode() if crlf else text.encode())


@pytest.fixture()
def layouts(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    y16, y19, y20 = root / "raw/isic2016", root / "raw/isic2019", root / "raw/isic2020"
    img16, img19, img20 = (y16 / "ISBI2016_ISIC_Part3_Training_Data", y19 / "ISIC_2019_Training_Input",
                           y20 / "train")
    for folder in (img16, img19, img20):
        folder.mkdir(parents=True)
    for i in (1, 2, 3, 4, 6):
        (img16 / f"ISIC_000000{i}.jpg").write_bytes(jpeg(i))
    (img16 / "ISIC_0000008.jpg").write_bytes(jpeg(8))
    # a file the traversal id would reach: it must never be read
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd.jpg").write_bytes(jpeg(99))
    write(y16 / "ISBI2016_ISIC_Part3_Training_GroundTruth.csv", "\n".join([
        "ISIC_0000001,benign",      # kept (only here)
        "ISIC_0000002,benign",      # same image in 2019 as MEL: label conflict, 2019 wins
        "ISIC_0000003,malignant",   # same image in 2019 (downsampled name), consistent: merged
        "ISIC_0000004,maybe",       # unknown label value
        "ISIC_0000005,benign",      # image missing
        "../../etc/passwd,benign",  # path traversal
        "ISIC_12,benign",           # malformed id
        "ISIC_0000006,benign",      # 2019 copy is corrupt: falls back to this row
        "ISIC_0000008,benign",      # corrupt in 2016 only? no: fine here (kept)
    ]))
    (img19 / "ISIC_0000002.jpg").write_bytes(jpeg(2))
    (img19 / "ISIC_0000003_downsampled.jpg").write_bytes(jpeg(3))
    (img19 / "ISIC_0000006.jpg").write_bytes(jpeg(6)[:200])  # truncated JPEG
    (img19 / "ISIC_0000007.jpg").write_bytes(b"not a jpeg at all")
    header = "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\n"
    write(y19 / "ISIC_2019_Training_GroundTruth.csv", header + "\n".join([
        "ISIC_0000002,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
        "ISIC_0000003_downsampled,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
        "ISIC_0000006,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
        "ISIC_0000007,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",  # corrupt, no other copy
        "ISIC_0000009,0.0,1.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0",  # two classes hot: unknown label
    ]) + "\n")
    write(y19 / "ISIC_2019_Training_Metadata.csv", "image,age_approx,anatom_site_general,lesion_id,sex\n"
          "ISIC_0000002,55,anterior torso,,female\nISIC_0000003_downsampled,40,,,male\n")
    for i, name in enumerate(["ISIC_2000001", "ISIC_2000002", "ISIC_2000003", "ISIC_2000004", "ISIC_2000005"]):
        (img20 / f"{name}.jpg").write_bytes(jpeg(20 + i))
    write(y20 / "ISIC_2020_Training_GroundTruth.csv",
          "image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,benign_malignant,target\n"
          "ISIC_2000001,IP_1,male,45,torso,unknown,benign,0\n"
          "ISIC_2000002,IP_1,male,45,torso,unknown,benign,0\n"         # duplicate of 2000001, same label: merged
          "ISIC_2000003,IP_2,female,60,head/neck,melanoma,malignant,1\n"
          "ISIC_2000004,IP_2,female,60,head/neck,nevus,benign,0\n"     # duplicate of 2000003, other label
          "ISIC_2000005,IP_3,female,,torso,melanoma,benign,1\n")       # target and verdict disagree
    write(y20 / "ISIC_2020_Training_Duplicates.csv",
          "image_name_1,image_name_2\nISIC_2000002,ISIC_2000001\nISIC_2000004,ISIC_2000003\n")
    return root


def params_for(root: Path) -> Params:
    sources = [SourceParams(layout="isic2016", path="raw/isic2016"),
               SourceParams(layout="isic2019", path="raw/isic2019"),
               SourceParams(layout="isic2020", path="raw/isic2020")]
    return Params(data_root=str(root), lesions=LesionsParams(sources=sources, workers=1, split=SplitParams(
        val_fraction=0.2, test_fraction=0.2)))
