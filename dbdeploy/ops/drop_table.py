"""DropTable: set the table aside in the backup schema instead of destroying it.

``ALTER TABLE … SET SCHEMA`` is instant and keeps rows, indexes, constraints, defaults,
identity sequences and grants, so rollback brings back exactly the table that was "dropped".
The table goes into the pre-existing backup schema (``dbdeploy_backup``), so a role without
CREATE on the database can drop tables (README, "Least-privilege deploys"). Its indexes
(including those behind primary key, unique and exclusion constraints, whose names the
constraints share) and the sequences its columns own move along; they are renamed first to
names derived from the unique backup name, so two tables that share names in different schemas
never collide there. Every original name is recorded in ``dbdeploy_backup.dropped_tables`` and
the rollback gives each one back. Dependants (other tables' foreign keys, views) make the drop
refuse instead of CASCADE.
"""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import TableName
from dbdeploy.model.names import short_hash, split_table
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import (
    S,
    fail,
    notice,
    refuse_if_dependants,
    regclass,
    relation_exists,
    relation_missing,
    table_dependants,
)
from dbdeploy.sql import acl, ident, literal, qualified
from dbdeploy.sql.blocks import block, do_block, if_then, indented

# The backup name leaves room for the "_i<n>" / "_s<n>" suffixes of the renamed indexes and
# sequences within PostgreSQL's 63-byte identifiers.
_BASE_MAX = 56


def dropped_tables_table(ctx: PlanContext):
    """``<backup schema>.dropped_tables``: one row per table set aside, with its original names."""
    return ident(ctx.backup_schema, "dropped_tables")


def backup_base_name(version: str, index: int, table: str) -> str:
    """The table's unique name in the backup schema (≤ 56 bytes, deterministic)."""
    schema, name = split_table(table)
    full = "_".join((f"v{version}", f"op{index}", schema, name))
    if len(full) <= _BASE_MAX:
        return full
    tail = "_" + short_hash(full)
    return full[: _BASE_MAX - len(tail)].rstrip("_") + tail


class DropTable(Operation):
    kind: ClassVar[str] = "drop_table"
    destructive: ClassVar[bool] = True
    table: TableName

    def apply(self, state: SchemaState) -> None:
        state.forget_table(self.table)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.Table(self.table, present=False)]

    def _base(self, ctx: PlanContext) -> str:
        return backup_base_name(ctx.version, ctx.index, self.table)

    def _where(self, ctx: PlanContext):
        return S("version = {v} AND table_name = {t}").format(v=literal(ctx.version), t=literal(self.table))

    def forward(self, ctx: PlanContext) -> list[Step]:
        schema, name = split_table(self.table)
        base = self._base(ctx)
        meta = dropped_tables_table(ctx)
        rel = regclass(self.table)
        kept = f"{ctx.backup_schema}.{base}"
        body = block(
            if_then(relation_missing(self.table),
                    notice(ctx, f"table {self.table} is already gone"), S("RETURN;")),
            refuse_if_dependants(ctx, f"table {self.table}", table_dependants(self.table)),
            S("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE;").format(qualified(self.table)),
            S("CREATE TABLE IF NOT EXISTS {meta} (\n"
              "    version text NOT NULL, table_name text NOT NULL, backup_table text NOT NULL,\n"
              "    renamed jsonb NOT NULL DEFAULT '[]',\n"
              "    dropped_at timestamptz NOT NULL DEFAULT pg_catalog.now(),\n"
              "    PRIMARY KEY (version, table_name)\n"
              ");").format(meta=meta),
            acl.restrict_table(meta),
            if_then(S("EXISTS (SELECT 1 FROM {meta} WHERE {w}) OR {kept} IS NOT NULL OR {here} IS NOT NULL").format(
                        meta=meta, w=self._where(ctx), kept=regclass(kept), here=regclass(f"{schema}.{base}")),
                    fail(ctx, f"an earlier drop of {self.table} by {ctx.label} was never rolled back; "
                              f"{kept} still holds it",
                         f"Inspect {kept}; once it is not needed, drop it and delete its row from "
                         f"{ctx.backup_schema}.dropped_tables, then re-run.")),
            # Indexes (constraints' included) and owned sequences move with the table: unique names first.
            S("FOR v_rel IN\n"
              "    SELECT c.oid::pg_catalog.regclass::text AS rel, c.relkind = 'S' AS is_sequence, n.nspname::text"
              " AS nspname, c.relname::text AS relname\n"
              "    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n"
              "    WHERE c.oid IN (SELECT i.indexrelid FROM pg_catalog.pg_index i WHERE i.indrelid = {rel})\n"
              "       OR (c.relkind = 'S' AND c.oid IN (SELECT d.objid FROM pg_catalog.pg_depend d\n"
              "           WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass\n"
              "             AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass\n"
              "             AND d.refobjid = {rel} AND d.deptype IN ('a', 'i')))\n"
              "    ORDER BY c.relkind, c.relname\n"
              "LOOP\n"
              "    v_n := v_n + 1;\n"
              "    v_new := {base} || CASE WHEN v_rel.is_sequence THEN '_s' ELSE '_i' END || v_n;\n"
              "    EXECUTE 'ALTER ' || CASE WHEN v_rel.is_sequence THEN 'SEQUENCE ' ELSE 'INDEX ' END || v_rel.rel\n"
              "        || ' RENAME TO ' || pg_catalog.quote_ident(v_new);\n"
              "    v_renamed := v_renamed || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(\n"
              "        'kind', CASE WHEN v_rel.is_sequence THEN 'sequence' ELSE 'index' END,\n"
              "        'schema', v_rel.nspname, 'name', v_rel.relname, 'backup', v_new));\n"
              "END LOOP;").format(rel=rel, base=literal(base)),
            S("ALTER TABLE {t} RENAME TO {b};").format(t=qualified(self.table), b=ident(base)),
            S("ALTER TABLE {t} SET SCHEMA {s};").format(t=ident(schema, base), s=ident(ctx.backup_schema)),
            acl.set_aside(ctx.backup_schema, regclass(kept), literal(base)),
            S("INSERT INTO {meta} (version, table_name, backup_table, renamed) VALUES ({v}, {t}, {b}, v_renamed);"
              ).format(meta=meta, v=literal(ctx.version), t=literal(self.table), b=literal(base)),
            notice(ctx, f"table {self.table} moved to {kept} with its rows (kept for rollback)"),
        )
        declare = ["v_dependants text", "v_rel record", "v_n integer := 0", "v_new text",
                   "v_renamed jsonb := '[]'"]
        return scaled([Step(self.kind, self.table, "ACCESS EXCLUSIVE", True, do_block(body, declare=declare),
                            f"drop table {self.table} (set aside as {kept} with all its rows)")],
                      "constant (moved to another schema; no data copied)")

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        table = self.table
        kept = f"{ctx.backup_schema}.{self._base(ctx)}"
        return ChecklistItems(
            backups=[table],
            prerequisites=[
                queries.table_exists(table),
                queries.dependants(table, None, f"Nothing outside the table depends on {table}: no view, no other "
                                               "table's foreign key (the drop refuses otherwise)"),
                queries.relation_missing_check(kept, f"No copy left by an earlier drop of {table} by {ctx.label} "
                                                    f"that was never rolled back ({kept})"),
            ],
            notes=[f"{table} is not deleted: it is moved to {kept} (no PUBLIC access) with all its rows; its indexes "
                   f"and owned sequences get names starting with {self._base(ctx)} (the original names are recorded "
                   f"in {ctx.backup_schema}.dropped_tables). It keeps its disk space until that table is dropped by "
                   "hand, after the rollback window."],
            health_checks=[
                queries.table_missing(table, f"Table {table} is gone"),
                queries.table_exists(kept, f"set aside by {ctx.label} with all its rows"),
            ],
            rollback_notes=[f"The rollback moves {kept} back to {table} (instant: rows, indexes, constraints and "
                            "identity come back with it) and gives its indexes, constraints and sequences their "
                            "original names."])

    def rollback(self, ctx: PlanContext) -> list[Step]:
        schema, name = split_table(self.table)
        base = self._base(ctx)
        meta = dropped_tables_table(ctx)
        kept = f"{ctx.backup_schema}.{base}"
        body = block(
            if_then(relation_exists(self.table),
                    notice(ctx, f"table {self.table} is present; nothing to restore"), S("RETURN;")),
            *self._restore_refusals(ctx),
            S("ALTER TABLE {b} SET SCHEMA {s};").format(b=ident(ctx.backup_schema, base), s=ident(schema)),
            S("ALTER TABLE {b} RENAME TO {n};").format(b=ident(schema, base), n=ident(name)),
            S("FOR v_entry IN SELECT e FROM pg_catalog.jsonb_array_elements(v_saved.renamed) AS e LOOP\n"
              "    EXECUTE 'ALTER ' || CASE v_entry ->> 'kind' WHEN 'sequence' THEN 'SEQUENCE ' ELSE 'INDEX ' END\n"
              "        || pg_catalog.quote_ident({s}) || '.' || pg_catalog.quote_ident(v_entry ->> 'backup')\n"
              "        || ' RENAME TO ' || pg_catalog.quote_ident(v_entry ->> 'name');\n"
              "    IF v_entry ->> 'schema' <> {s} THEN\n"
              "        EXECUTE 'ALTER SEQUENCE ' || pg_catalog.quote_ident({s}) || '.'"
              " || pg_catalog.quote_ident(v_entry ->> 'name')\n"
              "            || ' SET SCHEMA ' || pg_catalog.quote_ident(v_entry ->> 'schema');\n"
              "    END IF;\n"
              "END LOOP;").format(s=literal(schema)),
            acl.put_back(ctx.backup_schema, regclass(self.table), literal(base)),
            S("DELETE FROM {meta} WHERE {w};").format(meta=meta, w=self._where(ctx)),
            notice(ctx, f"table {self.table} restored from {kept}"),
        )
        return [Step("restore_table", self.table, "ACCESS EXCLUSIVE", True,
                     do_block(body, declare=["v_saved record", "v_taken text", "v_entry jsonb"]),
                     f"restore table {self.table} with its rows, indexes and constraints")]

    def _restore_refusals(self, ctx: PlanContext) -> list[sql.Composable]:
        """What makes the restore refuse (needs ``v_saved record`` and ``v_taken text``): no record that
        this version set the table aside, the kept copy missing, or its original names taken meanwhile."""
        base = self._base(ctx)
        meta = dropped_tables_table(ctx)
        kept = f"{ctx.backup_schema}.{base}"
        outside = "The table was dropped outside this migration; restore it from a database backup."
        return [
            if_then(relation_missing(f"{ctx.backup_schema}.dropped_tables"),
                    fail(ctx, f"cannot restore {self.table}: no record that {ctx.label} set it aside", outside)),
            S("SELECT * INTO v_saved FROM {meta} WHERE {w};").format(meta=meta, w=self._where(ctx)),
            if_then(S("NOT FOUND OR {} IS NULL").format(regclass(kept)),
                    fail(ctx, f"cannot restore {self.table}: {kept} or its record in "
                              f"{ctx.backup_schema}.dropped_tables is missing", outside)),
            # Every name given back must be free: checked before anything changes.
            S("SELECT pg_catalog.string_agg(pg_catalog.quote_ident(e ->> 'schema') || '.'"
              " || pg_catalog.quote_ident(e ->> 'name'), ', ') INTO v_taken\n"
              "FROM pg_catalog.jsonb_array_elements(v_saved.renamed) AS e\n"
              "WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
              " ON n.oid = c.relnamespace\n"
              "              WHERE n.nspname = e ->> 'schema' AND c.relname = e ->> 'name');"),
            if_then(S("v_taken IS NOT NULL"),
                    fail(ctx, f"cannot restore {self.table}: other relations now use the names of its indexes or "
                              "sequences:", "Rename or drop those relations, then re-run the rollback.",
                         detail=S("v_taken"))),
        ]

    def rollback_preflight(self, ctx: PlanContext) -> list[sql.Composable]:
        """The restore's refusals, checked before the rollback's first change, while the table is gone
        (a table already present makes the restore a no-op)."""
        return [if_then(relation_missing(self.table),
                        S("DECLARE\n    v_saved record;\n    v_taken text;\nBEGIN\n{}\nEND;").format(
                            indented(block(*self._restore_refusals(ctx)))))]
