"""A stage's code deps are what its entry point imports: dvc.yaml and the Dagster code versions follow them.

Before, dvc.yaml listed folders by hand and missed modules the stages import (training/conditions.py was in no
stage, dit_baseline lacked training/latent_classifier.py, ...): an edit there left stale models with a clean
`dvc status`, and the assets' code versions repeated the gaps.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from pipelines.stage_code import (
    ROOT,
    code_deps,
    code_version,
    dep_files,
    entry_modules,
    imported_closure,
    stage_code_deps,
    with_code_deps,
)
from pipelines.stages import STAGES

CODE = ("pipelines/", "training/", "assets/")
# Project modules that run in no DVC stage: the shared door (see pipelines/stage_code.py) and the params layer
# behind it (profiles), run records and the operations around the pipeline. A new module that no stage imports
# fails the test below until it is imported by a stage or named here.
NOT_STAGE_CODE = {"pipelines/cli.py", "pipelines/stages.py", "pipelines/config.py", "pipelines/profiles.py",
                  "pipelines/stage_code.py", "pipelines/summary.py", "pipelines/dvc_cli.py", "pipelines/run_records"}


def _dvc_stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_dvc_yaml_code_deps_are_what_each_stage_imports():
    stages = _dvc_stages()
    assert set(stages) == set(STAGES)
    drift = {}
    for name, stage in stages.items():
        listed = [d for d in stage["deps"] if isinstance(d, str) and d.startswith(CODE)]
        if listed != stage_code_deps(name):
            drift[name] = {"missing": sorted(set(stage_code_deps(name)) - set(listed)),
                           "not imported": sorted(set(listed) - set(stage_code_deps(name))),
                           "order": listed}
    assert not drift, (f"dvc.yaml's code deps drifted from pipelines.stage_code.stage_code_deps: {drift}; "
                       f"`python -m pipelines.stage_code --write` updates them")


def test_writing_the_code_deps_keeps_data_deps_and_comments():
    text = textwrap.dedent("""\
        # header
        stages:
          a:
            cmd: fairskin a
            deps:
              - pipelines/old      # gone
              - data/in            # data stays
              - training/x.py
            outs:
              - data/out
          b:
            cmd: fairskin b
        """)
    deps = {"a": ["pipelines/a", "training/y.py"]}
    assert with_code_deps(text, deps.get) == textwrap.dedent("""\
        # header
        stages:
          a:
            cmd: fairskin a
            deps:
              - pipelines/a
              - training/y.py
              - data/in            # data stays
            outs:
              - data/out
          b:
            cmd: fairskin b
        """)
    assert with_code_deps((ROOT / "dvc.yaml").read_text()) == (ROOT / "dvc.yaml").read_text()


def test_the_modules_the_issue_found_missing_are_deps():
    for training in ("class_n_diff_model", "dit_baseline"):
        assert {"training/latent_classifier.py", "training/conditions.py", "training/latent_set.py",
                "training/rng_state.py", "training/vae", "training/latent_shards"} <= set(stage_code_deps(training))
    for reader in ("synthetic_shards", "generation_report", "joint_classifier_predictions",
                   "diffusion_classifier_report"):
        assert "pipelines/trained_models.py" in stage_code_deps(reader)


def test_every_project_module_runs_in_some_stage():
    covered = {p.relative_to(ROOT).as_posix() for name in STAGES for p in dep_files(stage_code_deps(name))}
    orphans = [p.relative_to(ROOT).as_posix() for package in ("pipelines", "training")
               for p in sorted((ROOT / package).rglob("*.py"))
               if p.relative_to(ROOT).as_posix() not in covered and p.read_text().strip()
               and not any(p.relative_to(ROOT).as_posix().startswith(n) for n in NOT_STAGE_CODE)]
    assert orphans == []


def test_dagster_code_versions_hash_the_same_deps():
    from assets.definitions import defs

    graph = defs.resolve_asset_graph()
    stage_of = {"rejects": "lesions"}
    versions = {key.to_user_string(): graph.get(key).code_version for key in graph.get_all_asset_keys()}
    expected = {name: code_version(stage_code_deps(stage_of.get(name, name))) for name in versions
                if stage_of.get(name, name) in STAGES}
    assert {name: versions[name] for name in expected} == expected
    assert versions["run_record"] == code_version(code_deps(["pipelines.run_records"]))


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A miniature project: a stage whose imports are lazy, relative, through a package __init__, type-only."""
    _write(tmp_path, {
        "pipelines/__init__.py": '"""empty: runs no code"""\n',
        "pipelines/config.py": "import pipelines.other.params\n",
        "pipelines/stages.py": """
            import pipelines.config

            def _shared():
                import training.model

            def run_s(params):
                from pipelines.s import stage
                _shared()
                return stage.go()

            def run_t(params):
                import pipelines.other.params
            """,
        "pipelines/s/__init__.py": "",
        "pipelines/s/stage.py": """
            from typing import TYPE_CHECKING

            if TYPE_CHECKING:
                import training.typing_only

            def go():
                from .helper import h  # relative and lazy
                return h()
            """,
        "pipelines/s/helper.py": "def h():\n    from training.sub.x import f\n    return f()\n",
        "pipelines/s/unused.py": "",
        "pipelines/other/__init__.py": "",
        "pipelines/other/params.py": "",
        "pipelines/lonely.py": "",
        "training/__init__.py": "",
        "training/model.py": "",
        "training/typing_only.py": "",
        "training/sub/__init__.py": "from training.sub import y\n",
        "training/sub/x.py": "def f():\n    return 1\n",
        "training/sub/y.py": "import training.leaf\n",
        "training/leaf.py": "",
    })
    return tmp_path


def test_walk_follows_lazy_relative_and_package_imports(project: Path):
    entry = entry_modules(["run_s"], project / "pipelines/stages.py", project)
    assert entry == {"pipelines", "pipelines.s", "pipelines.s.stage", "training", "training.model"}
    assert imported_closure(entry, project) == {
        "pipelines", "pipelines.s", "pipelines.s.stage", "pipelines.s.helper", "training", "training.model",
        "training.sub", "training.sub.x", "training.sub.y", "training.leaf"}  # not typing_only, nor config
    # sub-packages as folders, top-level modules as files, empty __init__.py files left out
    assert code_deps(entry, project) == ["pipelines/s", "training/leaf.py", "training/model.py", "training/sub"]
    # the door (config) is not walked: run_t's own import counts, config's do not add to run_s
    assert code_deps(entry_modules(["run_t"], project / "pipelines/stages.py", project), project) == [
        "pipelines/other"]


def test_code_version_changes_with_the_files_a_stage_runs(project: Path):
    deps = code_deps(entry_modules(["run_s"], project / "pipelines/stages.py", project), project)
    before = code_version(deps, project)
    (project / "pipelines/lonely.py").write_text("x = 1\n")  # imported by no stage
    (project / "training/sub/__pycache__").mkdir()
    (project / "training/sub/__pycache__/x.cpython-311.pyc").write_bytes(b"\0")
    assert code_version(deps, project) == before
    (project / "training/leaf.py").write_text("y = 2\n")  # reached through training/sub/__init__.py
    assert code_version(deps, project) != before


def test_dvc_ignores_bytecode_caches_in_code_folders():
    """Folder deps would change whenever Python writes `__pycache__` into them (`dvc status`: modified)."""
    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or "dvc"
    paths = ["pipelines/vae/__pycache__/stage.cpython-311.pyc", "training/dit.cpython-311.pyc"]
    done = subprocess.run([dvc, "check-ignore", *paths, "pipelines/vae/stage.py"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.stdout.split() == paths
