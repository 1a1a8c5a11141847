"""What a validation says: which expectation failed, on which rows — readable in a log and in the UI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str  # e.g. "expect_column_values_to_be_unique"
    column: str | None
    success: bool
    unexpected_count: int = 0
    unexpected_rows: list[str] = field(default_factory=list)  # row keys (ids), at most 20
    observed: str | None = None  # for aggregate expectations (a mean, a row count)

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        if self.success:
            return f"ok   {self.expectation}{where}"
        rows = f": {self.unexpected_count} rows, e.g. {', '.join(self.unexpected_rows[:5])}" if (
            self.unexpected_count) else ""
        observed = f" (observed {self.observed})" if self.observed is not None else ""
        return f"FAIL {self.expectation}{where}{rows}{observed}"


@dataclass(frozen=True)
class ValidationReport:
    suite: str
    table: str  # the file validated
    outcomes: list[ExpectationOutcome]

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def summary(self) -> str:
        head = f"{self.suite} on {self.table}: {len(self.outcomes) - len(self.failures)}/{len(self.outcomes)} passed"
        return "\n".join([head, *("  " + o.describe() for o in self.failures)])

    def to_dict(self) -> dict:
        return {"suite": self.suite, "table": self.table, "success": self.success,
                "outcomes": [asdict(o) for o in self.outcomes]}


class ValidationError(Exception):
    """A blocking validation failed; the message names the table, expectation and rows."""

    def __init__(self, report: ValidationReport):
        super().__init__(report.summary())
        self.report = report
