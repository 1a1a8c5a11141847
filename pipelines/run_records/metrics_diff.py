"""The metrics of two runs compared, in the shape of `dvc metrics diff --json`.

{metrics file: {dotted metric name: {"old": ..., "new": ..., "diff": new - old}}}, changed metrics only;
"diff" only when both values are numbers; a metric or file missing on one side reads None there. These are
DVC's rules (dvc/utils/diff.py), so a record's diff reads like `dvc metrics diff` between two commits.
"""

from __future__ import annotations

import math
from typing import Any

Metrics = dict[str, Any]


def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {"a.b.c": value}; empty dicts vanish; a bare value is the metric "" (as in DVC)."""
    if not isinstance(values, dict):
        return {prefix: values} if values is not None else {}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float)


def metrics_diff(old: dict[str, Metrics], new: dict[str, Metrics], *, with_unchanged: bool = False) -> dict:
    """Compare {metrics file: values} of two runs (see the module docstring for the shape)."""
    result: dict[str, dict] = {}
    for path in sorted(set(old) | set(new)):
        old_flat, new_flat = flatten(old.get(path, {})), flatten(new.get(path, {}))
        changes = {}
        for name in sorted(set(old_flat) | set(new_flat)):
            before, after = old_flat.get(name), new_flat.get(name)
            if before == after and not with_unchanged:
                continue
            change = {"old": before, "new": after}
            if _is_number(before) and _is_number(after):
                change["diff"] = after - before
            changes[name] = change
        if changes:
            result[path] = changes
    return result


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.5g}"
    return str(value)


def diff_markdown(diff: dict, old_name: str | None, new_name: str) -> str:
    """A short Markdown table of a `metrics_diff` result, for people (the UI, the record folder)."""
    if old_name is None:
        return f"# Metrics of {new_name}\n\nFirst run record: nothing to compare with.\n"
    lines = [f"# Metrics of {new_name} against {old_name}", ""]
    if not diff:
        return "\n".join([*lines, "No metric changed.", ""])
    lines += ["| file | metric | old | new | diff |", "|:--|:--|--:|--:|--:|"]
    for path, changes in diff.items():
        for name, change in changes.items():
            lines.append(f"| {path} | {name} | {_cell(change['old'])} | {_cell(change['new'])} | "
                         f"{_cell(change.get('diff'))} |")
    return "\n".join([*lines, ""])
