"""DropTrigger: drop a trigger, its definition kept for a rollback that re-creates it exactly.

Forward (one transaction; DROP TRIGGER takes ACCESS EXCLUSIVE on the table for a catalog change —
PostgreSQL docs, "Explicit Locking"): on its first run it saves ``pg_get_triggerdef`` (PostgreSQL's
complete ``CREATE TRIGGER`` text of it) and its enabled state (``tgenabled``) in ``<backup
schema>.dropped_triggers``, then drops it (never CASCADE: nothing depends on a trigger). A re-run finds
the trigger gone and the saved row there, and does nothing.

Rollback (SHARE ROW EXCLUSIVE: CREATE TRIGGER and ALTER TABLE … ENABLE/DISABLE TRIGGER — PostgreSQL
docs, CREATE TRIGGER and ALTER TABLE): ``EXECUTE`` of the saved text (the catalog's deparse at forward
time, never spec text), the enabled state restored with keywords chosen by ``CASE`` from a fixed list,
then the saved row is removed. The preflight refuses, before any change, when the forward recorded the
drop but the saved row is missing.
"""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import Identifier, TableName
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, fail, forget_owned, is_owned, notice, record_owned, relation_missing
from dbdeploy.sql import acl, ident, literal, qualified, regclass, render
from dbdeploy.sql.blocks import block, do_block, if_then


def dropped_triggers_table(ctx: PlanContext) -> sql.Identifier:
    return ident(ctx.backup_schema, "dropped_triggers")


class DropTrigger(Operation):
    """Drop trigger ``name`` of ``table``. Shapes: ``DropTrigger(table="public.documents",
    name="documents_touch")``. At run time the forward refuses, changing nothing, when the table or the
    trigger does not exist (and this version did not drop it)."""

    kind: ClassVar[str] = "drop_trigger"
    table: TableName
    name: Identifier

    @property
    def key(self) -> str:
        return f"{self.table}.{self.name}"

    def apply(self, state: SchemaState) -> None:
        state.functions.pop(f"trigger {self.key}", None)

    def _where(self, ctx: PlanContext) -> sql.Composable:
        return S("d.version = {v} AND d.table_name = {t} AND d.trigger_name = {n}").format(
            v=literal(ctx.version), t=literal(self.table), n=literal(self.name))

    def _saved(self, ctx: PlanContext) -> sql.Composable:
        meta = dropped_triggers_table(ctx)
        return S("({} IS NOT NULL AND EXISTS (SELECT 1 FROM {meta} d WHERE {w}))").format(
            regclass(meta), meta=meta, w=self._where(ctx))

    def forward(self, ctx: PlanContext) -> list[Step]:
        meta, rel = dropped_triggers_table(ctx), regclass(self.table)
        body = block(
            if_then(relation_missing(self.table),
                    fail(ctx, f"table {self.table} does not exist", "Check the table name; nothing was changed.")),
            S("SELECT t.oid INTO v_oid FROM pg_catalog.pg_trigger t"
              " WHERE t.tgrelid = {rel} AND t.tgname = {n} AND NOT t.tgisinternal;").format(
                rel=rel, n=literal(self.name)),
            if_then(S("v_oid IS NULL"),
                    if_then(self._saved(ctx),
                            notice(ctx, f"trigger {self.name} on {self.table} is already dropped (its definition is "
                                        f"kept in {ctx.backup_schema}.dropped_triggers)"),
                            S("RETURN;")),
                    fail(ctx, f"trigger {self.name} on {self.table} does not exist; nothing to drop",
                         "Check the table and trigger names.")),
            S("CREATE TABLE IF NOT EXISTS {meta} (\n"
              "    version text NOT NULL, table_name text NOT NULL, trigger_name text NOT NULL,\n"
              "    definition text NOT NULL, enabled text NOT NULL,\n"
              "    dropped_at timestamptz NOT NULL DEFAULT pg_catalog.now(),\n"
              "    PRIMARY KEY (version, table_name, trigger_name)\n"
              ");").format(meta=meta),
            acl.restrict_table(meta),
            S("INSERT INTO {meta} (version, table_name, trigger_name, definition, enabled)\n"
              "SELECT {v}, {t}, {n}, pg_catalog.pg_get_triggerdef(v_oid), t.tgenabled::text"
              " FROM pg_catalog.pg_trigger t WHERE t.oid = v_oid ON CONFLICT DO NOTHING;").format(
                meta=meta, v=literal(ctx.version), t=literal(self.table), n=literal(self.name)),
            record_owned(ctx, "dropped_trigger", self.key),
            S("DROP TRIGGER {n} ON {t};").format(n=ident(self.name), t=qualified(self.table)),
            notice(ctx, f"dropped trigger {self.name} on {self.table} (its definition is kept for the rollback)"),
        )
        return scaled([Step(self.kind, self.table, "ACCESS EXCLUSIVE", True, do_block(body, declare=["v_oid oid"]),
                            f"drop trigger {self.name} on {self.table} (definition kept)")], queries.CATALOG_ONLY)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        meta = dropped_triggers_table(ctx)
        qt, qn = literal(render(qualified(self.table))), literal(render(ident(self.name)))
        body = block(
            if_then(S("NOT {}").format(self._saved(ctx)),
                    notice(ctx, f"no saved definition of trigger {self.name} on {self.table} (nothing to restore: "
                                "rolled back already, or the forward did not run)"),
                    forget_owned(ctx, "dropped_trigger", self.key),
                    S("RETURN;")),
            S("SELECT d.definition, d.enabled INTO v_definition, v_enabled FROM {meta} d WHERE {w};").format(
                meta=meta, w=self._where(ctx)),
            if_then(S("EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = {rel} AND t.tgname = {n}"
                      " AND NOT t.tgisinternal)").format(rel=regclass(self.table), n=literal(self.name)),
                    fail(ctx, f"a trigger {self.name} on {self.table} exists again, so the rollback cannot re-create "
                              "the dropped one; nothing was changed",
                         "Drop the new trigger (or rename it), then run the rollback again.")),
            # PostgreSQL's own deparse of the trigger at forward time: data from the catalog, not spec text
            S("EXECUTE v_definition;"),
            if_then(S("v_enabled <> 'O'"),
                    S("EXECUTE 'ALTER TABLE ' || {qt} || CASE v_enabled WHEN 'D' THEN ' DISABLE TRIGGER '"
                      " WHEN 'R' THEN ' ENABLE REPLICA TRIGGER ' ELSE ' ENABLE ALWAYS TRIGGER ' END || {qn};").format(
                        qt=qt, qn=qn)),
            S("DELETE FROM {meta} d WHERE {w};").format(meta=meta, w=self._where(ctx)),
            forget_owned(ctx, "dropped_trigger", self.key),
            notice(ctx, f"re-created trigger {self.name} on {self.table} as it was before {ctx.label}"),
        )
        return [Step("restore_trigger", self.table, "SHARE ROW EXCLUSIVE", True,
                     do_block(body, declare=["v_definition text", "v_enabled text"]),
                     f"re-create trigger {self.name} on {self.table} from its saved definition")]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        exists_again = S("EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = {rel} AND t.tgname = {n}"
                         " AND NOT t.tgisinternal)").format(rel=regclass(self.table), n=literal(self.name))
        return [if_then(
            # a trigger of that name made by this same version (a later CreateTrigger) is dropped by its own
            # rollback first
            S("{} AND {} AND NOT {}").format(self._saved(ctx), exists_again, is_owned(ctx, "trigger", self.key)),
            fail(ctx, f"a trigger {self.name} on {self.table} exists again, so the rollback cannot re-create the one "
                      f"{ctx.label} dropped",
                 "Drop the new trigger (or rename it), then run the rollback again.")), if_then(
            S("{} AND NOT {}").format(is_owned(ctx, "dropped_trigger", self.key), self._saved(ctx)),
            fail(ctx, f"the definition of trigger {self.name} on {self.table}, saved in "
                      f"{ctx.backup_schema}.dropped_triggers when {ctx.label} dropped it, is missing, so the "
                      "rollback cannot re-create it",
                 f"Re-create the trigger by hand, delete the row 'dropped_trigger' {self.key} of "
                 f"{ctx.history_schema}.migration_objects, then run the rollback again."))]

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.Trigger(self.name, self.table, present=False)]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        definition = queries.query(S(
            "SELECT pg_catalog.pg_get_triggerdef(oid) AS definition FROM pg_catalog.pg_trigger"
            " WHERE tgrelid = {rel} AND tgname = {n} AND NOT tgisinternal").format(
            rel=regclass(self.table), n=literal(self.name)))
        return ChecklistItems(
            prerequisites=[queries.table_exists(self.table),
                           CheckQuery(f"Trigger {self.name} on {self.table} now (kept for the rollback)", definition,
                                      "one row")],
            notes=[f"DROP TRIGGER takes ACCESS EXCLUSIVE on {self.table} for a catalog change: it waits for running "
                   "queries on the table, and queries wait for it."],
            rollback_notes=[f"The rollback re-creates trigger {self.name} on {self.table} from its pg_get_triggerdef "
                            f"saved at forward time in {ctx.backup_schema}.dropped_triggers (with its enabled "
                            "state); it refuses before any change when that saved definition is missing or a "
                            "trigger of that name exists again."])


__all__ = ["DropTrigger", "dropped_triggers_table"]
