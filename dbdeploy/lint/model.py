"""Rules, findings and the report: plain data, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from dbdeploy.errors import SpecError

if TYPE_CHECKING:
    from dbdeploy.lint.context import OpContext

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Rule:
    """One lint rule: a kebab-case id, how bad it is, the problem in general and the safe fix.

    ``check`` is called once per operation and yields one line per finding, saying what exactly
    is wrong there (the column, the statement). ``allowable`` is False for the rare rule whose
    finding dbdeploy cannot work around even when the spec says it is fine.
    """

    id: str
    severity: Severity
    problem: str
    fix: str
    check: Callable[[OpContext], Iterable[str]]
    allowable: bool = True


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    file: str
    version: str
    migration: str
    operation_index: int        # 0-based, as in the spec's ``operations[i]``
    operation: str              # what the operation does ("create_table raw.events")
    subject: str                # what exactly (the column, the statement)
    problem: str
    fix: str
    allowed: str | None = None  # the spec's reason, when the operation allows this rule

    @property
    def blocking(self) -> bool:
        return self.severity == "error" and self.allowed is None

    @property
    def location(self) -> str:
        return f"Migration {self.version}.operations[{self.operation_index}] ({self.operation})"

    def as_dict(self) -> dict:
        return {
            "rule": self.rule, "severity": self.severity, "file": self.file, "version": self.version,
            "migration": self.migration, "operation_index": self.operation_index, "operation": self.operation,
            "subject": self.subject, "problem": self.problem, "fix": self.fix,
            "allowed": self.allowed is not None, "reason": self.allowed,
        }


@dataclass(frozen=True)
class LintReport:
    findings: tuple[Finding, ...]
    migrations: int

    @property
    def errors(self) -> list[Finding]:
        """Error-level findings the specs do not allow: these make lint exit 2 and generate refuse."""
        return [f for f in self.findings if f.blocking]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning" and f.allowed is None]

    @property
    def allowed(self) -> list[Finding]:
        return [f for f in self.findings if f.allowed is not None]

    @property
    def exit_code(self) -> int:
        return 2 if self.errors else 0


class LintError(SpecError):
    """Specs with error-level lint findings that they do not allow (``generate`` refuses them)."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        lines = [f"{f.file}: {f.location}: {f.rule}: {f.subject}\n    fix: {f.fix}" for f in findings]
        super().__init__(
            f"lint found {len(findings)} error(s) that the specs do not allow; nothing was written:\n  "
            + "\n  ".join(lines),
            fix="make each change the safe way (`dbdeploy lint` explains every finding), or, where it is safe, "
                'allow it on its operation with the reason: allow={"rule-id": "why it is safe here"}')

    def render(self) -> str:
        return f"{self.reason}\n{self.fix}"
