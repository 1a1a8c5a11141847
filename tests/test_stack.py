"""The dagster/dvc dependency conflict (STACK.md): both must keep working in this one environment.

dagster's asset-selection grammar needs the ANTLR 4.13 runtime; dvc's hydra/omegaconf used to pin 4.9.
If a resolver change brings the conflict back, one of these two tests fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent


def test_dagster_string_selections_parse():
    from dagster import AssetSelection

    from assets.definitions import defs

    graph = defs.resolve_asset_graph()
    everything = AssetSelection.from_string("*").resolve(graph)
    assert {k.to_user_string() for k in everything} >= {"demo_data", "lesions", "rejects", "skin_tone"}
    upstream = AssetSelection.from_string("1+key:skin_tone").resolve(graph)
    assert {k.to_user_string() for k in upstream} == {"lesions", "skin_tone"}
    job = defs.resolve_job_def("pipeline")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        k.to_user_string() for k in everything}


def test_dvc_exp_run_with_a_param_override(tmp_path: Path):
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}

    def run(*command: str) -> str:
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        return done.stdout

    run("git", "init", "-q")
    run(str(BIN / "dvc"), "init", "-q")
    (tmp_path / "params.yaml").write_text("train:\n  steps: 3\n")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"count": {
        "cmd": f"{sys.executable} -c \"import yaml; s = yaml.safe_load(open('params.yaml'))['train']['steps'];"
               f" open('out.txt', 'w').write(str(s * 2))\"",
        "params": ["train.steps"], "outs": ["out.txt"]}}}))
    run("git", "add", "-A")
    run("git", "commit", "-qm", "init")
    run(str(BIN / "dvc"), "exp", "run", "-S", "train.steps=21")
    assert (tmp_path / "out.txt").read_text() == "42"
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["train"]["steps"] == 21
