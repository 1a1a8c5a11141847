"""Finding the image file a metadata row names, safely (never outside the set's folder)."""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.external_sets.schema import MALFORMED_ROW, MISSING_IMAGE, UNSAFE_PATH, RowRejected, lexical_abspath


class ImageFinder:
    """Finds image files named by metadata, never touching anything outside `base`.

    A name is first checked lexically (absolute paths, `..` escapes, NUL bytes) without any
    file-system call; then the resolved path (symlinks followed) must still lie inside `base`; only
    then is the file looked at. When the exact name is absent, each path component is matched
    case-insensitively (Derm7pt's mixed `.jpg`/`.JPG`, DATA.md §3.3); listings are cached.
    """

    def __init__(self, base: Path) -> None:
        self.base = lexical_abspath(base)
        self._real_base = self.base.resolve()
        self._listings: dict[Path, dict[str, list[str]]] = {}

    def find(self, name: str) -> Path:
        """The file `base/name` (lexical path, possibly with corrected case), or raise RowRejected."""
        if not name or "\x00" in name:
            raise RowRejected(MALFORMED_ROW, f"image name {name!r} is empty or contains a NUL byte")
        candidate = Path(os.path.normpath(self.base / name))
        if Path(name).is_absolute() or not candidate.is_relative_to(self.base):
            raise RowRejected(UNSAFE_PATH, f"image name {name!r} would resolve outside {self.base.name}/")
        self._check_contained(candidate, name)
        if candidate.is_file():
            return candidate
        matched = self._match_case_insensitively(candidate, name)
        if matched is None:
            raise RowRejected(MISSING_IMAGE, f"image {name!r} not found in {self.base.name}/")
        return matched

    def contains(self, path: Path) -> bool:
        """Whether `path` (symlinks followed) lies inside `base`."""
        try:
            return path.resolve().is_relative_to(self._real_base)
        except (OSError, RuntimeError):  # symlink loop
            return False

    def _check_contained(self, path: Path, name: str) -> None:
        if not self.contains(path):
            raise RowRejected(
                UNSAFE_PATH, f"image name {name!r} resolves outside {self.base.name}/ (symlink)"
            )

    def _match_case_insensitively(self, candidate: Path, name: str) -> Path | None:
        current = self.base
        for part in candidate.relative_to(self.base).parts:
            exact = current / part
            if exact.exists():
                current = exact
            else:
                matches = self._listing(current).get(part.lower(), [])
                if len(matches) != 1:  # none, or ambiguous (`a.jpg` and `a.JPG` both there)
                    return None
                current = current / matches[0]
            self._check_contained(current, name)
        return current if current.is_file() else None

    def _listing(self, folder: Path) -> dict[str, list[str]]:
        if folder not in self._listings:
            names: dict[str, list[str]] = {}
            if folder.is_dir():
                for entry in sorted(os.listdir(folder)):
                    names.setdefault(entry.lower(), []).append(entry)
            self._listings[folder] = names
        return self._listings[folder]
