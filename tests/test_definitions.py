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
    }
    assert {graph.get(k).group_name for k in graph.get_all_asset_keys()} == {"ingestion"}
    assert all(graph.get(k).code_version for k in graph.get_all_asset_keys())


def test_checks_are_blocking():
    from assets.ingestion import external_sets_valid, lesions_valid

    for check in (lesions_valid, external_sets_valid):
        (spec,) = check.check_specs
        assert spec.blocking
    assert {s.asset_key.to_user_string() for c in (lesions_valid, external_sets_valid) for s in c.check_specs} == {
        "lesions", "external_sets"}


def test_nightly_schedule_runs_the_whole_graph_by_default():
    from dagster import DefaultScheduleStatus

    schedule = defs.resolve_schedule_def("nightly")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "pipeline"


def test_every_asset_is_in_the_dvc_workspace_pool():
    from assets.ingestion import demo_data, external_sets, lesions_and_rejects, skin_tone

    for assets_def in (demo_data, lesions_and_rejects, skin_tone, external_sets):
        assert {node.pool for node in [assets_def.node_def]} == {"dvc_workspace"}
