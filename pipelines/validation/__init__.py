"""Great Expectations suites for the tables the pipeline produces (lesions, external test sets)."""

from pipelines.validation.report import ExpectationOutcome, ValidationReport
from pipelines.validation.suites import validate_external_sets, validate_lesions

__all__ = ["ExpectationOutcome", "ValidationReport", "validate_external_sets", "validate_lesions"]
