"""What dvc.yaml and dvc.lock say about outs: their md5s per stage, and which outs DVC does not cache.

Outs with `cache: false` (metrics, small plots) are kept in git by DVC, not in its cache, so
`dvc checkout` cannot bring back an old version: run records copy those files themselves.
"""

from __future__ import annotations

from pathlib import Path

import yaml


def read_lock(lock_file: Path) -> dict[str, dict]:
    """{stage: its dvc.lock entry}; a missing dvc.lock is an error naming the file."""
    if not lock_file.is_file():
        raise FileNotFoundError(f"{lock_file}: no dvc.lock (has any stage run and been committed to DVC?)")
    lock = yaml.safe_load(lock_file.read_text()) or {}
    return lock.get("stages", {}) or {}


def out_hashes(lock_file: Path, stages: list[str] | None = None) -> dict[str, dict[str, str]]:
    """{stage: {out path: md5}} of `stages` (default all) as recorded in `lock_file`; absent stages give {}."""
    lock = read_lock(lock_file)
    names = list(lock) if stages is None else stages
    return {stage: {out["path"]: out["md5"] for out in lock.get(stage, {}).get("outs", [])} for stage in names}


def uncached_outs(dvc_yaml: Path) -> list[str]:
    """Paths of the stage outs, metrics and plots declared with `cache: false` in dvc.yaml."""
    stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {})
    paths = []
    for stage in stages.values():
        for key in ("outs", "metrics", "plots"):
            for entry in stage.get(key, []) or []:
                if isinstance(entry, dict):
                    for path, options in entry.items():
                        if (options or {}).get("cache", True) is False:
                            paths.append(path)
    return sorted(paths)


