"""SeedRows: reference data inserted with ON CONFLICT DO NOTHING; rollback removes only the rows
this migration inserted (recorded at insert time), after copying them to the backup schema."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any, ClassVar

from psycopg.types.json import Jsonb
from pydantic import field_validator, model_validator

from dbdeploy.ops import checks, expect
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState, SeededRows, Step
from dbdeploy.ops.common import (
    S,
    backup_name,
    backup_table,
    block,
    copy_to_timestamped_backup,
    do_block,
    fail,
    if_then,
    regclass,
    relation_missing,
    rollback_backup_prefix,
)
from dbdeploy.spec.base import ColumnList, TableName
from dbdeploy.spec.names import check_identifier, split_table
from dbdeploy.sql import ident, literal, qualified, render

_SCALARS = (str, int, float, bool, decimal.Decimal, datetime.date, datetime.datetime, datetime.time,
            uuid.UUID, type(None))


class SeedRows(Operation):
    kind: ClassVar[str] = "seed_rows"
    table: TableName
    rows: list[dict[str, Any]]
    conflict_columns: ColumnList

    @field_validator("rows")
    @classmethod
    def _rows(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not value:
            raise ValueError("rows must list at least one row — fix: add a row, or remove the SeedRows")
        for i, row in enumerate(value):
            if not row:
                raise ValueError(f"rows[{i}] is empty — fix: give the row its column values")
            for column, cell in row.items():
                check_identifier(column, f"rows[{i}] column")
                if isinstance(cell, dict | list):
                    _check_json(cell, f"rows[{i}].{column}")
                elif isinstance(cell, str) and "\x00" in cell:
                    raise ValueError(f"rows[{i}].{column} contains a NUL byte, which PostgreSQL text cannot hold — "
                                     "fix: remove the NUL byte (\\x00)")
                elif not isinstance(cell, _SCALARS):
                    raise ValueError(f"rows[{i}].{column}: unsupported value type {type(cell).__name__} — fix: "
                                     "use str, int, float, bool, Decimal, date/datetime, UUID, None, "
                                     "or dict/list for jsonb")
        return value

    @model_validator(mode="after")
    def _conflict_columns_given(self) -> SeedRows:
        for i, row in enumerate(self.rows):
            missing = [c for c in self.conflict_columns if c not in row]
            if missing:
                raise ValueError(f"rows[{i}] has no value for conflict column(s) {', '.join(missing)} — fix: give "
                                 "every row a value for each conflict column")
        return self

    @property
    def columns(self) -> list[str]:
        ordered: list[str] = []
        for row in self.rows:
            ordered += [c for c in row if c not in ordered]
        return ordered

    def apply(self, state: SchemaState) -> None:
        state.require_columns(self.table, self.columns, "rows")

    def expects(self, ctx: PlanContext) -> list[dict]:
        return [expect.seed_rows(self.table, self.conflict_columns, self.rows,
                                 f"{ctx.backup_schema}.{self._log_name(ctx)}")]

    def _log_table(self, ctx: PlanContext):
        return backup_table(ctx, self._log_name(ctx))

    def _log_name(self, ctx: PlanContext) -> str:
        return backup_name(ctx, f"op{ctx.index}", "seeded", split_table(self.table)[1])

    def forward(self, ctx: PlanContext) -> list[Step]:
        columns = self.columns
        values = S(",\n    ").join(
            S("({})").format(S(", ").join(_value(row[c]) if c in row else S("DEFAULT") for c in columns))
            for row in self.rows)
        keys = S(", ").join(ident(c) for c in self.conflict_columns)
        text = block(
            S("CREATE TABLE IF NOT EXISTS {log} AS SELECT {keys} FROM {t} WITH NO DATA;").format(
                log=self._log_table(ctx), keys=keys, t=qualified(self.table)),
            S("REVOKE ALL ON TABLE {log} FROM PUBLIC;").format(log=self._log_table(ctx)),
            S("WITH inserted AS (\n    INSERT INTO {t} ({cols}) VALUES\n    {values}\n"
              "    ON CONFLICT ({keys}) DO NOTHING\n    RETURNING {keys}\n)\n"
              "INSERT INTO {log} ({keys}) SELECT {keys} FROM inserted;").format(
                t=qualified(self.table), cols=S(", ").join(ident(c) for c in columns), values=values,
                keys=keys, log=self._log_table(ctx)),
        )
        return [Step(self.kind, self.table, "ROW EXCLUSIVE", True, render(text),
                     f"insert {len(self.rows)} seed row(s) into {self.table} unless present")]

    def rollback(self, ctx: PlanContext) -> list[Step]:
        keys = S(", ").join(ident(c) for c in self.conflict_columns)
        match = S("({keys}) IN (SELECT {keys} FROM {log})").format(keys=keys, log=self._log_table(ctx))
        cascading = S(
            "(SELECT pg_catalog.string_agg(c.conrelid::pg_catalog.regclass::text, ', ')"
            " FROM pg_catalog.pg_constraint c WHERE c.contype = 'f' AND c.confrelid = {rel}"
            " AND c.conrelid <> c.confrelid AND c.confdeltype IN ('c', 'n', 'd'))").format(
            rel=S("pg_catalog.to_regclass({})").format(literal(render(qualified(self.table)))))
        body = block(
            if_then(S("{} OR {}").format(relation_missing(self.table),
                                         relation_missing(f"{ctx.backup_schema}.{self._log_name(ctx)}")),
                    S("RETURN;")),
            S("v_dependants := {};").format(cascading),
            if_then(S("v_dependants IS NOT NULL"),
                    fail(ctx, f"refusing to delete seed rows of {self.table}: foreign keys with ON DELETE "
                              "CASCADE/SET NULL/SET DEFAULT would change rows in",
                         "Delete or re-point the referencing rows first, then re-run the rollback.",
                         detail=S("v_dependants"))),
            if_then(S("EXISTS (SELECT 1 FROM {t} WHERE {m})").format(t=qualified(self.table), m=match),
                    copy_to_timestamped_backup(
                        ctx, f"{split_table(self.table)[1]}_seed",
                        S("SELECT * FROM {t} WHERE {m}").format(t=qualified(self.table), m=match),
                        f"the seed rows of {self.table}"),
                    S("DELETE FROM {t} WHERE {m};").format(t=qualified(self.table), m=match)),
            S("DROP TABLE {log};").format(log=self._log_table(ctx)),
        )
        return [Step("delete_seed_rows", self.table, "ROW EXCLUSIVE", True,
                     do_block(body, declare=["v_dependants text", "v_backup text"]),
                     f"delete the seed rows {ctx.label} inserted into {self.table} (copied out first)")]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        existing = self.table not in earlier.created_tables
        keys = list(self.conflict_columns)
        key_sql = S(", ").join(ident(c) for c in keys)
        distinct = sorted({tuple(repr(row[c]) for c in keys): row for row in self.rows
                           if all(row[c] is not None for c in keys)}.items())
        tuples = [S("({})").format(S(", ").join(_value(row[c]) for c in keys)) for _, row in distinct]
        present = CheckQuery(
            f"The {len(distinct)} seed row(s) are in {self.table} (matched by {', '.join(keys)})",
            checks.query(S("SELECT count(*) AS seed_rows_present FROM {t}\nWHERE ({k}) IN ({v})").format(
                t=qualified(self.table), k=key_sql, v=S(", ").join(tuples))), str(len(distinct)))
        prerequisites = []
        if existing:
            prerequisites = [
                checks.table_exists(self.table),
                CheckQuery(f"{self.table} has a unique index on exactly ({', '.join(keys)}) (ON CONFLICT needs it)",
                           checks.query(_unique_index_exists(self.table, keys)), "true"),
            ]
        log = f"{ctx.backup_schema}.{self._log_name(ctx)}"
        prefix = rollback_backup_prefix(ctx.version, f"{split_table(self.table)[1]}_seed")
        return ChecklistItems(
            prerequisites=prerequisites, backups=[self.table] if existing else [],
            notes=[f"Seed rows whose key already exists in {self.table} are left as they are (ON CONFLICT DO "
                   f"NOTHING); the keys {ctx.label} inserts are recorded in {log}."] if existing else [],
            health_checks=[present],
            rollback_notes=[f"The rollback deletes only the seed rows {ctx.label} inserted into {self.table} "
                            f"(listed in {log}), after copying them to {ctx.backup_schema}.{prefix}_<timestamp>; "
                            "it refuses while other tables' foreign keys with ON DELETE CASCADE/SET NULL/SET "
                            "DEFAULT would change their rows."],
            durations=checks.durations(self.forward(ctx), f"constant ({len(self.rows)} row(s))"),
            seeds=[SeededRows(self.table, tuple(self.rows))])


def _unique_index_exists(table: str, columns: list[str]):
    """A unique, non-partial index whose key columns are exactly ``columns`` (in any order)."""
    return S(
        "SELECT EXISTS (\n"
        "    SELECT 1 FROM pg_catalog.pg_index AS i\n"
        "    WHERE i.indrelid = {rel} AND i.indisunique AND i.indpred IS NULL AND i.indnkeyatts = {n}\n"
        "      AND NOT EXISTS (\n"
        "          SELECT 1 FROM pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)\n"
        "          WHERE k.ord <= i.indnkeyatts AND k.attnum NOT IN (\n"
        "              SELECT a.attnum FROM pg_catalog.pg_attribute AS a\n"
        "              WHERE a.attrelid = i.indrelid AND a.attname IN ({names})))\n"
        ") AS unique_index_exists").format(
        rel=regclass(table), n=literal(len(columns)), names=S(", ").join(literal(c) for c in columns))


def _check_json(value: Any, where: str) -> None:
    """dict/list cells become jsonb: every nested value must be JSON and free of NUL bytes."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or "\x00" in key:
                raise ValueError(f"{where}: jsonb keys must be strings without NUL bytes (got {key!r}) — fix: "
                                 "use a string key without \\x00")
            _check_json(item, f"{where}.{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            _check_json(item, f"{where}[{n}]")
    elif isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where} contains a NUL byte, which jsonb cannot hold — fix: remove the NUL byte (\\x00)")
    elif not isinstance(value, bool | int | float | type(None)):
        raise ValueError(f"{where}: unsupported value type {type(value).__name__} inside jsonb — fix: "
                         "use str, number, bool, None, dict or list")


def _value(cell: Any):
    if isinstance(cell, dict | list):
        return literal(Jsonb(cell))
    return literal(cell)
