"""Which source files each stage runs, derived from what its entry point imports.

`dvc.yaml` lists these as the stage's code deps and the Dagster asset hashes them into its code version, so
an edit to any module a stage imports (directly or through other project modules, lazily inside a function
included) makes both `dvc status` and the UI call the stage stale. `tests/test_stage_code.py` fails when
`dvc.yaml` or the assets drift from what this module derives; `python -m pipelines.stage_code --write` puts the
derived deps into `dvc.yaml`.

The entry point of stage `name` is its functions in `pipelines/stages.py` (`STAGES[name].run` and `.check`,
with the module-level helpers they call); the walk follows every `import` of the project's packages it meets,
except imports under `if TYPE_CHECKING:` (never executed). It does not enter the shared door that every stage
passes through: `pipelines/cli.py`, `pipelines/stages.py` (wiring) and `pipelines/config.py` (the typed mirror of
`params.yaml`, whose values DVC tracks per stage as `params:`; walking it would make every stage depend on every
other stage's parameter module). Keep stage logic out of those three files.

For readability a dep is a folder per sub-package (`training/vae`, which covers all its files, as DVC hashes a
folder dep) or a file for a module directly in a top-level package (`training/dit.py`). Empty `__init__.py`
files (a docstring at most) run no code and are left out.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "training", "assets")
DOOR = ("pipelines.cli", "pipelines.stages", "pipelines.config")
STAGES_MODULE = "pipelines.stages"
IGNORED = ("__pycache__",)  # as in .dvcignore: not part of what a folder dep hashes


def module_path(module: str, root: Path = ROOT) -> Path | None:
    """The file of a project module (`pipelines.vae.stage` -> pipelines/vae/stage.py), None for anything else."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _import_nodes(node: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    for child in ast.iter_child_nodes(node):
        for statement in child.orelse if _type_checking_only(child) else [child]:
            if isinstance(statement, ast.Import | ast.ImportFrom):
                yield statement
            yield from _import_nodes(statement)


def imported_modules(node: ast.AST, module: str, root: Path = ROOT) -> set[str]:
    """Project modules an AST (a module or one function) imports, with the packages above them (importing
    `a.b.c` runs `a/__init__.py` and `a/b/__init__.py` too)."""
    names: list[str] = []
    for imp in _import_nodes(node):
        if isinstance(imp, ast.Import):
            names += [alias.name for alias in imp.names]
            continue
        base = imp.module or ""
        if imp.level:  # relative: `from . import x` inside package `a.b`
            path = module_path(module, root)
            parts = module.split(".")
            parts = parts[: len(parts) - imp.level + (path is not None and path.name == "__init__.py")]
            base = ".".join([*parts, *([imp.module] if imp.module else [])])
        names += [base, *(f"{base}.{alias.name}" for alias in imp.names)]  # `from a import b`: b may be a module
    found = set()
    for name in names:
        parts = name.split(".")
        found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)
                  if module_path(".".join(parts[:i]), root) is not None}
    return found


def _module_imports(module: str, root: Path) -> frozenset[str]:
    path = module_path(module, root)
    return _parsed_imports(module, root, path.stat().st_mtime_ns)


@cache  # keyed on the file's mtime: an edited module is parsed again
def _parsed_imports(module: str, root: Path, mtime_ns: int) -> frozenset[str]:
    path = module_path(module, root)
    return frozenset(imported_modules(ast.parse(path.read_text(), filename=str(path)), module, root))


def imported_closure(modules: Iterable[str], root: Path = ROOT, door: Sequence[str] = DOOR) -> set[str]:
    """`modules` and every project module they import, transitively; the door is neither kept nor walked."""
    seen: set[str] = set()
    todo = [m for m in modules if m not in door]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += [m for m in _module_imports(module, root) if m not in door and m not in seen]
    return seen


def _runs_code(path: Path) -> bool:
    """False for an `__init__.py` holding a docstring at most."""
    if path.name != "__init__.py":
        return True
    body = ast.parse(path.read_text()).body
    return any(not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)) for s in body)


def readable_deps(files: Iterable[Path], root: Path = ROOT) -> list[str]:
    """Files as dvc.yaml lists them: the sub-package folder (`training/vae`) or the top-level module file."""
    deps = set()
    for path in files:
        parts = path.relative_to(root).parts
        deps.add("/".join(parts[:2]) if len(parts) > 2 else "/".join(parts))
    return sorted(deps)


def code_deps(modules: Iterable[str], root: Path = ROOT, door: Sequence[str] = DOOR) -> list[str]:
    """The code deps (dvc.yaml's form) of an entry point that imports `modules`."""
    paths = (module_path(m, root) for m in imported_closure(modules, root, door))
    return readable_deps([p for p in paths if _runs_code(p)], root)


def _entry_functions(stage: str) -> list[str]:
    from pipelines.stages import STAGES

    if stage not in STAGES:
        raise KeyError(f"{stage!r} is not a stage of pipelines/stages.py (STAGES: {', '.join(STAGES)})")
    return [f.__name__ for f in (STAGES[stage].run, STAGES[stage].check) if f is not None]


def entry_modules(functions: Iterable[str], source: Path, root: Path = ROOT) -> set[str]:
    """Project modules imported by the named functions of `source` (a door module) and by the module-level
    functions they call there."""
    module = ".".join(source.relative_to(root).with_suffix("").parts)
    defs = {node.name: node for node in ast.parse(source.read_text()).body
            if isinstance(node, ast.FunctionDef)}
    todo, seen, modules = list(functions), set(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in defs:
            raise KeyError(f"{source}: no module-level function {name!r}")
        seen.add(name)
        modules |= imported_modules(defs[name], module, root)
        todo += [n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name) and n.id in defs]
    return modules


def stage_code_deps(stage: str) -> list[str]:
    """The code deps of stage `stage`: what `dvc.yaml` lists and what its Dagster asset's code version hashes."""
    return code_deps(entry_modules(_entry_functions(stage), module_path(STAGES_MODULE)))


def dep_files(deps: Iterable[str], root: Path = ROOT) -> list[Path]:
    """The files DVC hashes for these deps (a folder: every file under it, bar `.dvcignore`'s caches)."""
    files = []
    for dep in deps:
        path = root / dep
        if path.is_dir():
            files += [p for p in path.rglob("*") if p.is_file() and p.suffix != ".pyc"
                      and not set(IGNORED) & set(p.relative_to(root).parts)]
        else:
            files.append(path)
    return sorted(files)


def code_version(deps: Iterable[str], root: Path = ROOT) -> str:
    """A short hash of the deps' files (paths and bytes): the Dagster code version."""
    digest = hashlib.sha256()
    for path in dep_files(deps, root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def with_code_deps(dvc_yaml: str, deps_of: Callable[[str], list[str]] = stage_code_deps) -> str:
    """`dvc.yaml`'s text with each stage's code deps (its `deps:` entries under the project's packages) replaced
    by `deps_of(stage)`, listed first; every other line (data deps, comments) kept as it is."""
    lines, stage, in_deps = [], None, False
    for line in dvc_yaml.splitlines(keepends=True):
        if re.match(r"^  [\w-]+:\s*$", line):
            stage, in_deps = line.strip()[:-1], False
        if stage and re.match(r"^    deps:\s*$", line):
            in_deps = True
            lines += [line, *(f"      - {dep}\n" for dep in deps_of(stage))]
            continue
        if in_deps and re.match(r"^    \S", line):
            in_deps = False
        if in_deps and re.match(rf"^      - ({'|'.join(PACKAGES)})/", line):
            continue
        lines.append(line)
    return "".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m pipelines.stage_code`: print each stage's code deps; `--write`: put them into dvc.yaml."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the code deps in dvc.yaml")
    parser.add_argument("--dvc-yaml", type=Path, default=ROOT / "dvc.yaml")
    args = parser.parse_args(argv)
    if args.write:
        text = args.dvc_yaml.read_text()
        updated = with_code_deps(text)
        args.dvc_yaml.write_text(updated)
        print(f"{args.dvc_yaml}: {'updated' if updated != text else 'already up to date'}")
        return 0
    from pipelines.stages import STAGES

    for stage in STAGES:
        print(f"{stage}:\n" + "".join(f"  - {dep}\n" for dep in stage_code_deps(stage)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
