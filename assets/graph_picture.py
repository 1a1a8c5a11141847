"""The asset graph as a picture for the README: a Mermaid block (GitHub renders it) and a PNG.

Both are drawn from the real `Definitions`, so `tests/test_definitions.py` can check that the README's
picture is the graph `dagster dev` shows (`scripts/asset_graph_picture.py` rewrites both).
"""

from __future__ import annotations

from pathlib import Path

from dagster import Definitions

GROUP_COLOURS = {"ingestion": "#dbeafe", "latents": "#e0e7ff", "class_n_diff": "#fce7f3", "generation": "#fef3c7",
                 "evaluation": "#dcfce7", "operations": "#e5e7eb"}


def asset_edges(defs: Definitions) -> tuple[dict[str, str], list[tuple[str, str]], dict[str, list[str]]]:
    """({asset: group}, [(upstream, downstream)], {asset: [blocking/non-blocking check names]})."""
    graph = defs.resolve_asset_graph()
    groups, edges = {}, []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        groups[key.to_user_string()] = node.group_name
        edges += [(parent.to_user_string(), key.to_user_string()) for parent in sorted(
            node.parent_keys, key=lambda k: k.to_user_string())]
    checks: dict[str, list[str]] = {}
    for check in sorted(graph.asset_check_keys, key=lambda c: (c.asset_key.to_user_string(), c.name)):
        checks.setdefault(check.asset_key.to_user_string(), []).append(check.name)
    return groups, edges, checks


def group_order(groups: dict[str, str]) -> list[str]:
    """Groups in pipeline order (GROUP_COLOURS), then any others by name."""
    present = set(groups.values())
    return [g for g in GROUP_COLOURS if g in present] + sorted(present - set(GROUP_COLOURS))


def asset_graph_mermaid(defs: Definitions) -> str:
    """A Mermaid flowchart: one subgraph per asset group, checks written under their asset."""
    groups, edges, checks = asset_edges(defs)
    lines = ["flowchart LR"]
    for group in group_order(groups):
        lines.append(f"  subgraph {group}")
        for asset, asset_group in groups.items():
            if asset_group == group:
                label = asset + "".join(f"<br/><i>check: {c}</i>" for c in checks.get(asset, []))
                lines.append(f'    {asset}["{label}"]')
        lines.append("  end")
    lines += [f"  {a} --> {b}" for a, b in edges]
    return "\n".join(lines) + "\n"


def layered_positions(groups: dict[str, str], edges: list[tuple[str, str]]) -> dict[str, tuple[float, float]]:
    """x = longest path from a source; y = order within the layer by the mean y of the parents (fewer crossings)."""
    parents: dict[str, list[str]] = {node: [] for node in groups}
    for a, b in edges:
        parents[b].append(a)
    layer: dict[str, int] = {}
    while len(layer) < len(groups):
        for node in groups:
            if node not in layer and all(p in layer for p in parents[node]):
                layer[node] = max((layer[p] + 1 for p in parents[node]), default=0)
    y: dict[str, float] = {}
    for x in range(max(layer.values()) + 1):
        column = [n for n in groups if layer[n] == x]
        column.sort(key=lambda n: (sum(y[p] for p in parents[n]) / len(parents[n]) if parents[n] else 0.0, n))
        for rank, node in enumerate(column):
            y[node] = rank - (len(column) - 1) / 2
    return {node: (3.0 * layer[node], -1.2 * y[node]) for node in groups}


def draw_asset_graph(defs: Definitions, path: Path) -> Path:
    """A left-to-right layered drawing, boxes coloured by group, arrows from box edge to box edge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups, edges, checks = asset_edges(defs)
    position = layered_positions(groups, edges)
    fig, ax = plt.subplots(figsize=(17, 7.5))
    boxes = {}
    for node, (x, y) in position.items():
        label = node + "".join(f"\n✓ {c}" for c in checks.get(node, []))
        boxes[node] = ax.text(x, y, label, ha="center", va="center", fontsize=8.5, family="monospace", zorder=3,
                              bbox={"boxstyle": "round,pad=0.45", "edgecolor": "#374151",
                                    "facecolor": GROUP_COLOURS.get(groups[node], "#f3f4f6")})
    for a, b in edges:
        span = round((position[b][0] - position[a][0]) / 3.0)  # layers crossed: bend long edges around boxes
        ax.annotate("", xy=position[b], xytext=position[a], zorder=1, arrowprops={
            "arrowstyle": "-|>", "color": "#6b7280", "lw": 1.0, "shrinkA": 1, "shrinkB": 1,
            "patchA": boxes[a].get_bbox_patch(), "patchB": boxes[b].get_bbox_patch(),
            "connectionstyle": f"arc3,rad={0.06 + 0.07 * (span - 1)}"})
    xs, ys = zip(*position.values(), strict=True)
    ax.set_xlim(min(xs) - 1.6, max(xs) + 1.6)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor=GROUP_COLOURS.get(g, "#f3f4f6"), edgecolor="#374151")
               for g in group_order(groups)]
    ax.legend(handles, group_order(groups), loc="lower left", fontsize=9, title="asset group")
    ax.set_title("fairskin asset graph (Dagster assets = DVC stages; ✓ = asset check)")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
