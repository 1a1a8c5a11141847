"""A grid of example images per label x skin-tone group: what a user looks at first in the UI."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageOps

from pipelines.atomic_files import atomic_path

TILE = 96
LABEL_WIDTH = 150


def sample_grid(lesions: pd.DataFrame, data_root: Path, path: Path, per_cell: int = 6, seed: int = 0) -> Path:
    """Rows: benign/malignant x skin-tone group A/B/C/unknown; up to `per_cell` random images each."""
    rows = [(label, tone) for label in (0, 1) for tone in ("A", "B", "C", "unknown")]
    grid = Image.new("RGB", (LABEL_WIDTH + per_cell * TILE, len(rows) * TILE), "white")
    draw = ImageDraw.Draw(grid)
    for r, (label, tone) in enumerate(rows):
        cell = lesions[(lesions["label"] == label) & (lesions["skin_tone_group"] == tone)]
        name = "malignant" if label else "benign"
        draw.text((6, r * TILE + TILE // 2 - 12), f"{name}\nskin tone {tone}\nn = {len(cell)}", fill="black")
        picks = cell.sample(n=min(per_cell, len(cell)), random_state=seed) if len(cell) else cell
        for c, image_path in enumerate(picks["image_path"]):
            with Image.open(data_root / image_path) as image:
                tile = ImageOps.fit(image.convert("RGB"), (TILE - 4, TILE - 4))
            grid.paste(tile, (LABEL_WIDTH + c * TILE + 2, r * TILE + 2))
    with atomic_path(path) as temp:
        grid.save(temp, format="PNG")
    return path
