"""Run a list of Great Expectations expectations on a DataFrame, with an ephemeral context.

GX is imported here, lazily: its import costs seconds (STACK.md), and only validation needs it.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from pipelines.validation.report import ExpectationOutcome, ValidationReport

ROW_KEY = "__row_key__"
MAX_ROWS_REPORTED = 20


def run_expectations(frame: pd.DataFrame, expectations: list[Any], suite_name: str, table: str,
                     row_key: pd.Series) -> ValidationReport:
    """Validate `frame`; failing rows are named by `row_key` (e.g. the isic_id, else 'row N')."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its import logs at INFO
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}  # keep logs readable (STACK.md)
    source = context.data_sources.add_pandas(suite_name)
    batch_definition = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=expectations))
    frame = frame.assign(**{ROW_KEY: row_key.to_numpy()})
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format={"result_format": "COMPLETE",
                                                  "unexpected_index_column_names": [ROW_KEY]})
    outcomes = [_outcome(r) for r in result.results]
    return ValidationReport(suite=suite_name, table=table, outcomes=outcomes)


def _outcome(result: Any) -> ExpectationOutcome:
    config, details = result.expectation_config, result.result or {}
    rows = [str(item.get(ROW_KEY)) for item in details.get("unexpected_index_list") or []
            if isinstance(item, dict)]
    observed = details.get("observed_value")
    return ExpectationOutcome(
        expectation=config.type,
        column=config.kwargs.get("column") or ",".join(config.kwargs.get("column_list", [])) or None,
        success=bool(result.success),
        unexpected_count=int(details.get("unexpected_count") or 0),
        unexpected_rows=list(dict.fromkeys(rows))[:MAX_ROWS_REPORTED],
        observed=None if observed is None else str(observed),
    )
