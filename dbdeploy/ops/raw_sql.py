"""RawSQL: the escape hatch. The author gives forward and rollback SQL; both must parse."""

from __future__ import annotations

from typing import ClassVar

from pglast import ast
from pglast.parser import scan
from pydantic import ConfigDict, Field, field_validator

from dbdeploy.ops import expect
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, Step
from dbdeploy.sql import SqlParseError, is_transaction_control, parse_statements, psql, statement_needs_autocommit


def _check(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    try:
        statements = parse_statements(value)
    except SqlParseError as exc:
        raise ValueError(f"{field} is not valid SQL: {exc}") from None
    for statement in statements:
        node = statement.stmt
        if isinstance(node, ast.VariableSetStmt) and (node.name or "").lower() in _LEXER_SETTINGS:
            raise ValueError(f"{field} sets {node.name}, which changes how psql reads and sends the statements "
                             "after it, so psql and dbdeploy would run different SQL — fix: remove it (bundles run "
                             "with client_encoding UTF8 and standard_conforming_strings on; write E'…' strings "
                             "for backslash escapes)")
    if any(is_transaction_control(s) for s in statements):
        raise ValueError(f"{field} contains BEGIN/COMMIT/ROLLBACK, but dbdeploy runs each step in its own "
                         "transaction (or in autocommit for CONCURRENTLY) — fix: remove the transaction statements")
    return value


_LEXER_SETTINGS = ("client_encoding", "standard_conforming_strings")


def _terminated(text: str) -> str:
    """The SQL with one terminating ';'. After a trailing ``--`` comment the ';' goes on a line of its
    own: inside the comment it would not end the statement, and psql (and the executor's splitter)
    would run it together with the step's COMMIT. A body that ends with COPY data (its ``\\.``
    line) is complete as it is."""
    body = text.strip()
    found = [s for s in psql.statements(body) if not s.empty]
    if found and found[-1].copy_data is not None:
        return body
    body = body.rstrip(";").rstrip()
    tokens = scan(body)
    return body + ("\n;" if tokens and tokens[-1].name == "SQL_COMMENT" else ";")


def _needs_autocommit(text: str) -> bool:
    return any(statement_needs_autocommit(s) for s in parse_statements(text))


class RawSQL(Operation):
    kind: ClassVar[str] = "raw_sql"
    model_config = ConfigDict(populate_by_name=True)

    # ``forward``/``rollback`` are the spec's field names; the attributes are renamed because
    # every operation already has forward()/rollback() methods.
    forward_sql: str = Field(alias="forward")
    rollback_sql: str = Field(alias="rollback")
    verify: str | None = None

    @field_validator("forward_sql")
    @classmethod
    def _forward(cls, value: str) -> str:
        return _check(value, "forward")

    @field_validator("rollback_sql")
    @classmethod
    def _rollback(cls, value: str) -> str:
        return _check(value, "rollback")

    @field_validator("verify")
    @classmethod
    def _verify(cls, value: str | None) -> str | None:
        return _check(value, "verify")

    def target(self) -> str:
        return "-"

    def _step(self, text: str, summary: str) -> Step:
        autocommit = _needs_autocommit(text)
        return Step(self.kind, "-", "ACCESS EXCLUSIVE", not autocommit, _terminated(text), summary)

    def expects(self, ctx: PlanContext) -> list[dict]:
        return [expect.sql_check(self.verify, f"V{ctx.version} operation {ctx.index}")] if self.verify else []

    def forward(self, ctx: PlanContext) -> list[Step]:
        return [self._step(self.forward_sql, "raw SQL (forward, as written in the spec)")]

    def rollback(self, ctx: PlanContext) -> list[Step]:
        return [self._step(self.rollback_sql, "raw SQL (rollback, as written in the spec)")]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        health = [CheckQuery(f"The verify query of raw SQL operation {ctx.index}",
                             _terminated(self.verify), "true",
                             otherwise="`dbdeploy verify` fails only on `false`")] if self.verify else []
        return ChecklistItems(
            notes=[f"Operation {ctx.index} is raw SQL written by hand: read it in the forward and rollback files. "
                   "dbdeploy cannot tell its locks, duration, dependencies or which tables to back up "
                   "(its lock is listed as ACCESS EXCLUSIVE to be safe)."],
            health_checks=health,
            rollback_notes=[f"Raw SQL operation {ctx.index} is undone by the rollback SQL written in the spec."],
            durations=[(step, "unknown (raw SQL: read it)") for step in self.forward(ctx)])
