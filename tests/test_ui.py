"""The UI as a person uses it: `dagster dev`, a materialization launched through GraphQL, the asset
graph page and the fairness_report asset page (experiment headline, Table III, figures) in headless Chromium
(screenshots kept under test-artifacts/)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.e2e_project import REPO, copy_project
from tests.ui_server import DagsterDev, chromium

pytestmark = pytest.mark.slow

ARTIFACTS = REPO / "test-artifacts"
INGESTION = {"demo_data", "lesions", "rejects", "skin_tone", "external_sets"}


def all_assets() -> set[str]:
    from assets.definitions import defs

    return {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("ui-project"))
    ARTIFACTS.mkdir(exist_ok=True)
    dev = DagsterDev(project, ARTIFACTS / "dagster-dev.log")
    try:
        dev.wait_ready()
        yield dev
    finally:
        dev.stop()


def test_graphql_lists_assets_checks_and_the_schedule(server: DagsterDev):
    data = server.graphql("{ assetNodes { assetKey { path } groupName description } }")
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert set(nodes) == all_assets()
    assert {nodes[name]["groupName"] for name in INGESTION} == {"ingestion"}
    assert all(n["description"] for n in nodes.values())
    repo = server.graphql("{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } "
                          "schedules { name cronSchedule scheduleState { status } } } } } }")
    (repository,) = repo["repositoriesOrError"]["nodes"]
    assert [(s["name"], s["cronSchedule"], s["scheduleState"]["status"]) for s in repository["schedules"]] == [
        ("nightly", "0 2 * * *", "RUNNING")]
    checks = server.graphql('{ assetNodeOrError(assetKey: {path: ["lesions"]}) { ... on AssetNode '
                            "{ assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } } }")
    assert checks["assetNodeOrError"]["assetChecksOrError"]["checks"] == [{"name": "lesions_valid", "blocking": True}]
    server.repository = (repository["name"], repository["location"]["name"])


def test_materialization_launched_through_graphql_succeeds(server: DagsterDev):
    name, location = server.repository
    launched = server.graphql(
        "mutation($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) { __typename "
        "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }",
        {"p": {"selector": {"repositoryLocationName": location, "repositoryName": name, "pipelineName": "ingestion"},
               "mode": "default"}})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline, status = time.monotonic() + 300, None
    while time.monotonic() < deadline:
        status = server.graphql("query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
                                {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS"
    assert (server.project / "data/lesions/lesions.parquet").is_file()
    materialized = server.graphql('{ assetNodeOrError(assetKey: {path: ["lesions"]}) { ... on AssetNode '
                                  "{ assetMaterializations(limit: 1) { runId } } } }")
    assert materialized["assetNodeOrError"]["assetMaterializations"][0]["runId"] == run_id


@pytest.mark.skipif(shutil.which("chromium") is None and os.environ.get("CI") != "true",
                    reason="Debian's chromium is installed by `make test` where the user may (root + apt-get)")
def test_asset_graph_page_renders_in_chromium(server: DagsterDev, tmp_path: Path):
    _, location = server.repository
    groups = {"ingestion", "latents", "class_n_diff", "generation", "evaluation"}
    lineage, _ = chromium(f"{server.url}/asset-groups", tmp_path / "lineage")
    assert not [g for g in groups if g not in lineage], "the lineage page lacks asset groups"
    dom, screenshot = chromium(f"{server.url}/locations/{location}/asset-groups/ingestion", tmp_path / "ingestion")
    shutil.copy(screenshot, ARTIFACTS / screenshot.name)
    missing = [name for name in INGESTION if name not in dom]
    assert not missing, f"the ingestion graph page lacks {missing}; screenshot in {ARTIFACTS}"
    assert screenshot.stat().st_size > 10_000


def _write_predictions(project: Path) -> None:
    """Predictions where each classifier stage writes them (two arms, the joint and diffusion classifiers), so that
    `fairness_report` can be materialized alone: `augmented` under-detects FST V-VI malignant lesions."""
    import pandas as pd

    from tests.test_fairness_report import synthetic_predictions

    names = {"downstream_classifiers": {"fair": "baseline", "unfair": "augmented"},
             "joint_classifier": {"fair": "class_n_diff"},
             "diffusion_classifier_report": {"fair": "diffusion_classifier"}}
    for folder, rename in names.items():
        for file, frame in (("predictions", pd.concat([synthetic_predictions("isic_test", 40, 1),
                                                       synthetic_predictions("ddi", 30, 2)])),
                            ("validation_predictions", synthetic_predictions("isic_val", 30, 3))):
            out = project / "data" / folder / f"{file}.parquet"
            out.parent.mkdir(parents=True, exist_ok=True)
            frame[frame["classifier"].isin(rename)].replace({"classifier": rename}).to_parquet(out, index=False)


@pytest.mark.skipif(shutil.which("chromium") is None and os.environ.get("CI") != "true",
                    reason="Debian's chromium is installed by `make test` where the user may (root + apt-get)")
def test_fairness_report_page_shows_the_experiment_and_table(server: DagsterDev, tmp_path: Path):
    name, location = server.repository
    _write_predictions(server.project)
    launched = server.graphql(
        "mutation($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) { __typename "
        "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }",
        {"p": {"selector": {"repositoryLocationName": location, "repositoryName": name, "pipelineName": "__ASSET_JOB",
                            "assetSelection": [{"path": ["fairness_report"]}]}, "mode": "default"}}
    )["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    deadline, status = time.monotonic() + 300, None
    while time.monotonic() < deadline:
        status = server.graphql("query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
                                {"id": launched["run"]["runId"]})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    # `augmented` fails the blocking fairness check (the run fails), after fairness_report itself materialized
    assert status == "FAILURE"
    dom, screenshot = chromium(f"{server.url}/assets/fairness_report", tmp_path / "fairness")
    shutil.copy(screenshot, ARTIFACTS / "fairness-report-asset.png")
    for text in ("experiment_headline", "On ddi FST V-VI", "table_iii_markdown", "experiment__ddi"):
        assert text in dom, f"the fairness_report asset page lacks {text!r}; screenshot in {ARTIFACTS}"
