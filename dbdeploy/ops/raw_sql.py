"""RawSQL: the escape hatch. The author gives forward and rollback SQL; both must parse.

Bundles pin ``search_path = pg_catalog, pg_temp`` so that nothing dbdeploy runs can be hijacked by
an object named like a built-in. SQL copied from ``pg_dump -s`` or written for an application uses
unqualified names; ``search_path=[...]`` declares the schemas it needs. The path is set for the
RawSQL's own statements only: ``SET LOCAL`` inside its step's transaction (``tx=step``), or ``SET``
before its statements in autocommit (``tx=none``); in both cases the step ends with
``SET search_path = pg_catalog, pg_temp``, which also undoes any path the SQL itself set, so every
later statement of the bundle runs pinned again, under psql and the executor alike.
"""

from __future__ import annotations

from typing import ClassVar

from pglast import ast
from pglast.visitors import Visitor
from psycopg import sql
from pydantic import ConfigDict, Field, field_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.names import check_identifier, split_table
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.sql import (
    SqlParseError,
    ident,
    is_transaction_control,
    parse_statements,
    psql,
    render,
    statement_needs_autocommit,
)

# What every bundle pins (see render/bookkeeping.py) and each RawSQL step with a search_path restores.
PINNED_SEARCH_PATH = "SET search_path = pg_catalog, pg_temp;"


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
    items = psql.split_script(text)     # the body's own split (cached), not one of a copy of it
    found = [s for s in items if isinstance(s, psql.Statement) and not s.empty]
    if found and found[-1].copy_data is not None:
        return body
    body = body.rstrip(";").rstrip()
    # Only the tail needs lexing (linear in the body's size): the last item starts where the lexer
    # is in its initial state, so its tokens are those of the whole body from there on.
    lead = len(text) - len(text.lstrip())
    tail = items[-1].start - lead if items and 0 <= items[-1].start - lead < len(body) else 0
    tokens = psql.scan(body[tail:])   # linear also for non-ASCII text
    return body + ("\n;" if tokens and tokens[-1].name == "SQL_COMMENT" else ";")


def search_path_schemas(schemas: list[str]) -> list[str]:
    """The full path a RawSQL runs with: the spec's schemas, then ``pg_temp`` unless the spec places it
    (left implicit, PostgreSQL would search ``pg_temp`` first for tables, so a temporary table could
    shadow the application's). ``pg_catalog`` stays implicit: PostgreSQL searches it first anyway, and
    listed first it would become where unqualified CREATEs go."""
    return [*schemas, "pg_temp"] if "pg_temp" not in schemas else list(schemas)


def search_path_text(schemas: list[str]) -> str:
    """The path as SQL (each schema quoted with psycopg.sql), e.g. ``"shop", "public", "pg_temp"``."""
    return render(sql.SQL(", ").join(ident(s) for s in search_path_schemas(schemas)))


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
    # Schemas the SQL's unqualified names resolve in (its statements only; dbdeploy's stay pinned).
    search_path: list[str] | None = None

    @field_validator("search_path")
    @classmethod
    def _search_path(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("search_path is empty — fix: list the schemas the SQL's unqualified names are in, "
                             "e.g. search_path=[\"shop\", \"public\"], or leave search_path out")
        for name in value:
            check_identifier(name, "search_path schema")
        duplicates = sorted({n for n in value if value.count(n) > 1})
        if duplicates:
            raise ValueError(f"search_path lists {', '.join(duplicates)} more than once — fix: list each schema once")
        return value

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

    def apply(self, state: SchemaState) -> None:
        """Mark the spec-known tables this SQL may change beyond what the specs can see (a unique
        index, NOT NULL, a dropped key): each table whose name, or the name of one of its indexes or
        constraints, occurs anywhere in the forward SQL (case-insensitive text search: linear, and
        only ever marks too many). A key the specs cannot prove on such a table is left to the
        backfill's check at apply instead of being refused at generate."""
        text = self.forward_sql.lower()
        names = {table: {split_table(table)[1]} for table in state.tables}
        for relation, (_kind, table) in state.relations.items():
            names.setdefault(table, set()).add(relation.partition(".")[2])
        for table, known in state.tables.items():
            names[table] |= known.constraints
        touched = {table for table, words in names.items() if any(w.lower() in text for w in words)}
        if touched - state.raw_changed:
            state.raw_changed = state.raw_changed | touched

    def _step(self, text: str, summary: str) -> Step:
        autocommit = _needs_autocommit(text)
        body = _terminated(text)
        if self.search_path:
            path = search_path_text(self.search_path)
            # In a transaction SET LOCAL ends with it (even when it fails); in autocommit the SET holds
            # until the closing one. The closing SET is session-wide in both cases: it also undoes a
            # search_path the SQL set itself (pg_dump output does: set_config('search_path', '', false)).
            first = f"SET LOCAL search_path = {path};" if not autocommit else f"SET search_path = {path};"
            body = f"{first}\n{body}\n{PINNED_SEARCH_PATH}"
            summary = f"{summary}; search_path = {path}"
        return Step(self.kind, "-", "ACCESS EXCLUSIVE", not autocommit, body, summary)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        if not self.verify:
            return []
        return [expect.SqlCheck(f"V{ctx.version} operation {ctx.index}", self.verify,
                                relations=tuple(read_relations(self.verify)),
                                search_path=search_path_text(self.search_path) if self.search_path else None)]

    def forward(self, ctx: PlanContext) -> list[Step]:
        return scaled([self._step(self.forward_sql, "raw SQL (forward, as written in the spec)")],
                      "unknown (raw SQL: read it)")

    def rollback(self, ctx: PlanContext) -> list[Step]:
        return [self._step(self.rollback_sql, "raw SQL (rollback, as written in the spec)")]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        health = [CheckQuery(f"The verify query of raw SQL operation {ctx.index}",
                             _terminated(self.verify), "true",
                             otherwise="`dbdeploy verify` fails only on `false`")] if self.verify else []
        notes = [f"Operation {ctx.index} is raw SQL written by hand: read it in the forward and rollback files. "
                 "dbdeploy cannot tell its locks, duration, dependencies or which tables to back up "
                 "(its lock is listed as ACCESS EXCLUSIVE to be safe)."]
        if self.search_path:
            notes.append(f"Raw SQL operation {ctx.index} (forward and rollback) runs with search_path = "
                         f"{search_path_text(self.search_path)}: its unqualified names resolve in those schemas, so "
                         "anyone who can create objects in them can change what it runs. Every other statement of "
                         "the bundle runs with search_path = pg_catalog, pg_temp (set again right after it).")
        return ChecklistItems(
            notes=notes,
            health_checks=health,
            rollback_notes=[f"Raw SQL operation {ctx.index} is undone by the rollback SQL written in the spec."])


class _RelationCollector(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def visit_RangeVar(self, ancestors, node):  # noqa: N802 (pglast visitor naming)
        if node.schemaname:
            self.names.add(f"{node.schemaname}.{node.relname}")


def read_relations(text: str) -> list[str]:
    """The schema-qualified relations (``schema.name``, sorted) that SQL ``text`` names; unqualified
    names are left out (their schema depends on the search_path). Raises pglast's ParseError for
    text that does not parse (the spec validators have parsed it already)."""
    collector = _RelationCollector()
    for statement in parse_statements(text):
        collector(statement.stmt)
    return sorted(collector.names)
