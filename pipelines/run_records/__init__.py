"""Run records (data/runs/<date>-<run id>/), promotion of the newest succeeded run, `dvc push`, restore."""

from pipelines.dvc_cli import push_if_remote
from pipelines.run_records.params import MODEL_STAGES, RunRecordsParams
from pipelines.run_records.promotion import read_promoted
from pipelines.run_records.record import RunRecord, find_record, list_records, write_run_record
from pipelines.run_records.restore import RestoredRecord, restore_run_record

__all__ = ["MODEL_STAGES", "RestoredRecord", "RunRecord", "RunRecordsParams", "find_record", "list_records",
           "push_if_remote", "read_promoted", "restore_run_record", "write_run_record"]
