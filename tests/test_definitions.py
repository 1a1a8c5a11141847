"""The Dagster code location loads and its asset graph is what the docs say (keys, deps, groups, checks)."""

from __future__ import annotations

from assets.definitions import defs


def test_asset_graph_snapshot():
    graph = defs.resolve_asset_graph()
    deps = {key.to_user_string(): sorted(p.to_user_string() for p in graph.get(key).parent_keys)
            for key in graph.get_all_asset_keys()}
    assert deps == {
        "demo_data": [],
        "lesions": ["demo_data"],
        "rejects": ["demo_data"],
        "skin_tone": ["lesions"],
        "external_sets": ["demo_data"],
        "vae": ["lesions"],
        "latent_shards": ["lesions", "vae"],
        "class_n_diff_model": ["latent_shards", "vae"],
        "dit_baseline": ["latent_shards", "vae"],
        "generation_plan": ["lesions"],
        "synthetic_shards": ["class_n_diff_model", "generation_plan", "vae"],
        "generation_report": ["class_n_diff_model", "dit_baseline", "lesions", "synthetic_shards", "vae"],
        "downstream_classifiers": ["external_sets", "generation_plan", "generation_report", "lesions",
                                   "synthetic_shards"],
        "joint_classifier_predictions": ["class_n_diff_model", "external_sets", "latent_shards", "vae"],
        "diffusion_classifier_report": ["class_n_diff_model", "external_sets", "latent_shards", "vae"],
        "fairness_report": ["diffusion_classifier_report", "downstream_classifiers", "joint_classifier_predictions"],
        "run_record": ["dit_baseline", "fairness_report", "generation_report", "rejects", "skin_tone"],
    }
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert set(groups.values()) == {"ingestion", "latents", "class_n_diff", "generation", "evaluation",
                                   "operations"}
    assert all(graph.get(k).code_version for k in graph.get_all_asset_keys())


def test_checks_are_blocking():
    from assets.ingestion import external_sets_valid, lesions_valid
    from assets.models import fairness_within_threshold, synthetic_quality

    checks = (lesions_valid, external_sets_valid, synthetic_quality, fairness_within_threshold)
    for check in checks:
        (spec,) = check.check_specs
        assert spec.blocking
    assert {s.asset_key.to_user_string() for c in checks for s in c.check_specs} == {
        "lesions", "external_sets", "generation_report", "fairness_report"}


def test_synthetic_quality_gate_stands_between_generation_and_training():
    """A failed synthetic_quality check blocks downstream_classifiers, which depends on generation_report."""
    graph = defs.resolve_asset_graph()
    from dagster import AssetKey

    assert AssetKey("generation_report") in graph.get(AssetKey("downstream_classifiers")).parent_keys


def test_nightly_schedule_runs_the_whole_graph_by_default():
    from dagster import DefaultScheduleStatus

    schedule = defs.resolve_schedule_def("nightly")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "pipeline"


def test_pools_serialise_the_workspace_and_the_gpu():
    pools = {key.to_user_string(): defs.resolve_assets_def(key).node_def.pool
             for key in defs.resolve_asset_graph().get_all_asset_keys()}
    gpu = {"class_n_diff_model", "dit_baseline", "synthetic_shards", "downstream_classifiers",
           "diffusion_classifier_report"}
    assert {k for k, p in pools.items() if p == "gpu"} == gpu
    assert {p for k, p in pools.items() if k not in gpu} == {"dvc_workspace"}


def test_readme_picture_is_this_graph():
    """The README's Mermaid asset graph is drawn from these Definitions (scripts/asset_graph_picture.py)."""
    import re
    from pathlib import Path

    from assets.graph_picture import asset_graph_mermaid

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```mermaid\n(.*?)```", readme, flags=re.S)
    assert blocks == [asset_graph_mermaid(defs)], "README's asset graph is stale: run scripts/asset_graph_picture.py"
    assert "  lesions --> skin_tone\n" in blocks[0] and "  fairness_report --> run_record\n" in blocks[0]
