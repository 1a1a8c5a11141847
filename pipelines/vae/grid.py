"""Real (top row) vs reconstructed (bottom row) images: what a user checks first about a VAE."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipelines.atomic_files import atomic_path

LABEL_WIDTH = 110
MIN_TILE = 128  # small demo images are enlarged (nearest neighbour: no smoothing that would hide artefacts)


def reconstruction_grid(real: np.ndarray, reconstructed: np.ndarray, path: Path, psnr: list[float]) -> Path:
    """`real`, `reconstructed`: (N, H, W, 3) uint8; one column per image with its PSNR underneath."""
    count, height, width, _ = real.shape
    scale = max(1, -(-MIN_TILE // max(height, width)))
    tile_h, tile_w = height * scale, width * scale
    grid = Image.new("RGB", (LABEL_WIDTH + count * (tile_w + 4), 2 * (tile_h + 4) + 18), "white")
    draw = ImageDraw.Draw(grid)
    for row, (name, images) in enumerate((("real", real), ("reconstructed", reconstructed))):
        draw.text((6, row * (tile_h + 4) + tile_h // 2), name, fill="black")
        for column, image in enumerate(images):
            tile = Image.fromarray(image).resize((tile_w, tile_h), Image.Resampling.NEAREST)
            grid.paste(tile, (LABEL_WIDTH + column * (tile_w + 4) + 2, row * (tile_h + 4) + 2))
    for column, value in enumerate(psnr):
        draw.text((LABEL_WIDTH + column * (tile_w + 4) + 4, 2 * (tile_h + 4) + 2), f"{value:.1f} dB", fill="black")
    with atomic_path(path) as temp:
        grid.save(temp, format="PNG")
    return path
