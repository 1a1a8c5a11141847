"""Redraw docs/asset_graph.png and print the README's Mermaid block from the Dagster definitions.

    .venv/bin/python scripts/asset_graph_picture.py        # then paste the printed block into README.md
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assets.definitions import defs  # noqa: E402
from assets.graph_picture import asset_graph_mermaid, draw_asset_graph  # noqa: E402

if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "docs/asset_graph.png"
    draw_asset_graph(defs, out)
    print(f"wrote {out}\n\n```mermaid\n{asset_graph_mermaid(defs)}```")
