"""DropTable: move the table into a backup schema instead of destroying it.

``ALTER TABLE … SET SCHEMA`` is instant and keeps rows, indexes, constraints, defaults,
identity sequences and grants, so rollback brings back exactly the table that was "dropped".
Dependants (other tables' foreign keys, views) make the drop refuse instead of CASCADE.
"""

from __future__ import annotations

from typing import ClassVar

from dbdeploy.ops import checks, expect
from dbdeploy.ops.base import ChecklistItems, Operation, PlanContext, SchemaState, Step
from dbdeploy.ops.common import (
    S,
    block,
    do_block,
    fail,
    if_then,
    notice,
    refuse_if_dependants,
    relation_exists,
    relation_missing,
    table_dependants,
)
from dbdeploy.spec.base import TableName
from dbdeploy.spec.names import derived_name, split_table
from dbdeploy.sql import ident, literal, qualified


class DropTable(Operation):
    kind: ClassVar[str] = "drop_table"
    destructive: ClassVar[bool] = True
    table: TableName

    def apply(self, state: SchemaState) -> None:
        state.forget_table(self.table)

    def expects(self, ctx: PlanContext) -> list[dict]:
        return [expect.table(self.table, present=False)]

    def _backup_schema(self, ctx: PlanContext) -> str:
        """A schema of its own per dropped table: SET SCHEMA moves the table's indexes and owned
        sequences along under their own names, which would collide between tables that share a
        name in different schemas (schema-per-tenant layouts) if they all went to one schema."""
        schema, name = split_table(self.table)
        return derived_name(ctx.backup_schema, f"v{ctx.version}", schema, name)

    def forward(self, ctx: PlanContext) -> list[Step]:
        schema, name = split_table(self.table)
        backup = self._backup_schema(ctx)
        body = block(
            if_then(relation_missing(self.table),
                    notice(ctx, f"table {self.table} is already gone"), S("RETURN;")),
            refuse_if_dependants(ctx, f"table {self.table}", table_dependants(self.table)),
            if_then(S("EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = {})").format(literal(backup)),
                    fail(ctx, f"schema {backup} already exists, so {self.table} cannot be set aside there",
                         f"Inspect schema {backup} (an earlier drop that was never rolled back?); drop it once "
                         "it is no longer needed.")),
            S("CREATE SCHEMA {};").format(ident(backup)),
            S("REVOKE ALL ON SCHEMA {} FROM PUBLIC;").format(ident(backup)),
            S("ALTER TABLE {t} SET SCHEMA {s};").format(t=qualified(self.table), s=ident(backup)),
            notice(ctx, f"table {self.table} moved to schema {backup} (kept for rollback)"),
        )
        return [Step(self.kind, self.table, "ACCESS EXCLUSIVE", True,
                     do_block(body, declare=["v_dependants text"]),
                     f"drop table {self.table} (set aside in schema {backup} with all its rows)")]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        table = self.table
        backup = self._backup_schema(ctx)
        kept = f"{backup}.{split_table(table)[1]}"
        return ChecklistItems(
            backups=[table],
            prerequisites=[
                checks.table_exists(table),
                checks.dependants(table, None, f"Nothing outside the table depends on {table}: no view, no other "
                                               "table's foreign key (the drop refuses otherwise)"),
                checks.schema_missing(backup, f"Schema {backup} does not exist yet ({table} is set aside there)"),
            ],
            notes=[f"{table} is not deleted: it is moved to schema {backup} (no PUBLIC access) with all its rows "
                   "and keeps its disk space until that schema is dropped by hand, after the rollback window."],
            health_checks=[
                checks.table_missing(table, f"Table {table} is gone"),
                checks.table_exists(kept, f"set aside by {ctx.label} with all its rows"),
            ],
            rollback_notes=[f"The rollback moves {table} back from schema {backup} (instant: rows, indexes, "
                            "constraints and identity come back with it) and drops that schema."],
            durations=checks.durations(self.forward(ctx), "constant (moved to another schema; no data copied)"))

    def rollback(self, ctx: PlanContext) -> list[Step]:
        schema, name = split_table(self.table)
        backup = self._backup_schema(ctx)
        body = block(
            if_then(relation_exists(self.table),
                    notice(ctx, f"table {self.table} is present; nothing to restore"), S("RETURN;")),
            if_then(relation_missing(f"{backup}.{name}"),
                    fail(ctx, f"cannot restore {self.table}: {backup}.{name} is missing",
                         "The table was dropped outside this migration; restore it from a database backup.")),
            S("ALTER TABLE {b} SET SCHEMA {s};").format(b=ident(backup, name), s=ident(schema)),
            S("DROP SCHEMA {};").format(ident(backup)),
            notice(ctx, f"table {self.table} restored from schema {backup}"),
        )
        return [Step("restore_table", self.table, "ACCESS EXCLUSIVE", True, do_block(body),
                     f"restore table {self.table} with its rows, indexes and constraints")]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        """Refuse before any change when neither the table nor its set-aside copy exists."""
        name = split_table(self.table)[1]
        backup = self._backup_schema(ctx)
        return [if_then(S("{} AND {}").format(relation_missing(self.table), relation_missing(f"{backup}.{name}")),
                        fail(ctx, f"cannot restore {self.table}: {backup}.{name} is missing",
                             "The table was dropped outside this migration; restore it from a database backup."))]
