"""DropColumn: capture the column's definition and every row's value, then drop it.

The definition is read from the catalog at run time (the database, not the specs, knows what
the column really is): type, NOT NULL, default, and the constraints and indexes that the drop
takes with it. Values are copied keyed by the table's primary key. Rollback re-adds the column,
restores each row's value, default, NOT NULL, constraints and indexes, then removes the copy.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from psycopg import sql

from dbdeploy.ops import checks, expect
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState, Step
from dbdeploy.ops.common import (
    S,
    attnum,
    backup_name,
    block,
    column_dependants,
    column_exists,
    do_block,
    fail,
    if_then,
    is_owned,
    notice,
    refuse_if_dependants,
    regclass,
    relation_exists,
    relation_missing,
)
from dbdeploy.spec.base import Identifier, TableName
from dbdeploy.spec.names import split_table
from dbdeploy.sql import acl, ident, literal, qualified, render


def dropped_columns_table(ctx: PlanContext):
    return ident(ctx.backup_schema, "dropped_columns")


class DropColumn(Operation):
    kind: ClassVar[str] = "drop_column"
    destructive: ClassVar[bool] = True
    table: TableName
    column: Identifier

    def apply(self, state: SchemaState) -> None:
        table = state.tables.get(self.table)
        if table is None:
            return
        if self.column not in table.columns:
            raise ValueError(f"{self.table} has no column {self.column!r} to drop — fix: check the column "
                             "name, or remove this DropColumn")
        if self.column in table.primary_key:
            raise ValueError(f"{self.column!r} is part of {self.table}'s primary key and cannot be dropped — fix: "
                             "drop the table instead, or change the key with RawSQL")
        # Replace, never mutate: planning and lint keep shallow snapshots of the state.
        state.tables[self.table] = replace(table, columns={k: v for k, v in table.columns.items() if k != self.column})
        state.forget_column(self.table, self.column)

    def expects(self, ctx: PlanContext) -> list[dict]:
        return [expect.column(self.table, self.column, present=False)]

    def _backup(self, ctx: PlanContext) -> str:
        return backup_name(ctx, f"op{ctx.index}", split_table(self.table)[1], self.column)

    def _where(self, ctx: PlanContext):
        return S("version = {v} AND table_name = {t} AND column_name = {c}").format(
            v=literal(ctx.version), t=literal(self.table), c=literal(self.column))

    def forward(self, ctx: PlanContext) -> list[Step]:
        rel = regclass(self.table)
        meta = dropped_columns_table(ctx)
        backup = self._backup(ctx)
        col = literal(self.column)
        qt = literal(render(qualified(self.table)))
        body = block(
            if_then(S("{} OR NOT {}").format(relation_missing(self.table), column_exists(self.table, self.column)),
                    notice(ctx, f"column {self.table}.{self.column} is already gone"), S("RETURN;")),
            refuse_if_dependants(ctx, f"column {self.table}.{self.column}",
                                 column_dependants(self.table, self.column)),
            # Writes wait from here to the drop, so the saved copy holds every row's last value.
            S("LOCK TABLE {} IN SHARE MODE;").format(qualified(self.table)),
            S("SELECT pg_catalog.array_agg(a.attname::text ORDER BY k.ord) INTO v_key\n"
              "FROM pg_catalog.pg_index i\n"
              "CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)\n"
              "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum\n"
              "WHERE i.indrelid = {rel} AND i.indisprimary;").format(rel=rel),
            if_then(S("v_key IS NULL"),
                    fail(ctx, f"cannot drop {self.table}.{self.column} restorably: the table has no "
                              "primary key to restore values by",
                         "Add a primary key to the table first, or drop the column with RawSQL.")),
            S("CREATE TABLE IF NOT EXISTS {meta} (\n"
              "    version text NOT NULL, table_name text NOT NULL, column_name text NOT NULL,\n"
              "    column_type text NOT NULL, not_null boolean NOT NULL, default_expr text,\n"
              "    key_columns text[] NOT NULL, restore_ddl text[], backup_table text NOT NULL,\n"
              "    identity_kind text, column_comment text, collation_name text,\n"
              "    sequence_schema text, sequence_name text, sequence_value bigint, saved_sequence text,\n"
              "    dropped_at timestamptz NOT NULL DEFAULT pg_catalog.now(),\n"
              "    PRIMARY KEY (version, table_name, column_name)\n"
              ");").format(meta=meta),
            acl.restrict_table(meta),
            if_then(S("EXISTS (SELECT 1 FROM {meta} WHERE {w})").format(meta=meta, w=self._where(ctx)),
                    fail(ctx, f"an earlier drop of {self.table}.{self.column} by {ctx.label} was never "
                              f"rolled back; its saved values are still in {ctx.backup_schema}.{backup}",
                         f"Inspect {ctx.backup_schema}.{backup}; once it is not needed, drop it and delete its "
                         f"row from {ctx.backup_schema}.dropped_columns, then re-run.")),
            # Everything that makes the column what it is, read from the catalog.
            S("SELECT pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,\n"
              "       CASE WHEN a.attidentity = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,\n"
              "       a.attidentity, pg_catalog.col_description(a.attrelid, a.attnum),\n"
              "       (SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname)\n"
              "          FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace\n"
              "         WHERE co.oid = a.attcollation AND a.attcollation <> t.typcollation)\n"
              "INTO v_type, v_not_null, v_default, v_identity, v_comment, v_collation\n"
              "FROM pg_catalog.pg_attribute a\n"
              "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid\n"
              "LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum\n"
              "WHERE a.attrelid = {rel} AND a.attname = {col};").format(rel=rel, col=col),
            S("v_sequence := pg_catalog.pg_get_serial_sequence({qt}, {col});").format(qt=qt, col=col),
            if_then(S("v_sequence IS NOT NULL"),
                    S("v_sequence_value := pg_catalog.pg_sequence_last_value(v_sequence::pg_catalog.regclass);")),
            S("SELECT pg_catalog.array_agg(ddl ORDER BY ord, ddl) INTO v_ddl FROM (\n"
              "    SELECT 1 AS ord, 'ALTER TABLE ' || {qt} || ' ADD CONSTRAINT '\n"
              "        || pg_catalog.quote_ident(c.conname) || ' ' || pg_catalog.pg_get_constraintdef(c.oid)\n"
              "        || CASE WHEN c.convalidated THEN '' ELSE ' NOT VALID' END AS ddl\n"
              "    FROM pg_catalog.pg_constraint c\n"
              "    WHERE c.conrelid = {rel} AND c.contype IN ('c', 'f', 'u', 'x')\n"
              "      AND {attnum} = ANY (c.conkey)\n"
              "    UNION ALL\n"
              "    SELECT 2, pg_catalog.pg_get_indexdef(d.objid)\n"
              "    FROM pg_catalog.pg_depend d\n"
              "    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = {rel}\n"
              "      AND d.refobjsubid = {attnum}\n"
              "      AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indexrelid = d.objid)\n"
              "      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid = d.objid)\n"
              ") restore;").format(qt=qt, rel=rel, attnum=attnum(self.table, self.column)),
            S("EXECUTE 'CREATE TABLE ' || {bt} || ' AS SELECT '\n"
              "    || (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(k), ', ') FROM pg_catalog.unnest(v_key) k)\n"
              "    || ', ' || {qc} || ' FROM ' || {qt};").format(
                bt=literal(render(ident(ctx.backup_schema, backup))), qc=literal(render(ident(self.column))), qt=qt),
            acl.restrict_table(ident(ctx.backup_schema, backup)),
            # A serial column's sequence is dropped with the column: detach it and keep it aside.
            if_then(S("v_sequence IS NOT NULL AND v_identity = ''"),
                    S("SELECT n.nspname, c.relname INTO v_sequence_schema, v_sequence_name\n"
                      "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n"
                      "WHERE c.oid = v_sequence::pg_catalog.regclass;"),
                    S("EXECUTE 'ALTER SEQUENCE ' || v_sequence || ' OWNED BY NONE';"),
                    S("EXECUTE 'ALTER SEQUENCE ' || v_sequence || ' RENAME TO ' || pg_catalog.quote_ident({n});"
                      ).format(n=literal(f"{backup}_seq"[:63])),
                    S("EXECUTE 'ALTER SEQUENCE ' || pg_catalog.quote_ident(v_sequence_schema) || '.'"
                      " || pg_catalog.quote_ident({n}) || ' SET SCHEMA ' || pg_catalog.quote_ident({s});").format(
                        n=literal(f"{backup}_seq"[:63]), s=literal(ctx.backup_schema)),
                    acl.set_aside(ctx.backup_schema, regclass(f"{ctx.backup_schema}.{f'{backup}_seq'[:63]}"),
                                  literal(f"{backup}_seq"[:63])),
                    S("v_saved_sequence := {};").format(literal(f"{backup}_seq"[:63]))),
            S("INSERT INTO {meta} (version, table_name, column_name, column_type, not_null, default_expr,"
              " key_columns, restore_ddl, backup_table, identity_kind, column_comment, collation_name,"
              " sequence_schema, sequence_name, sequence_value, saved_sequence)\n"
              "VALUES ({v}, {t}, {c}, v_type, v_not_null, v_default, v_key, v_ddl, {b}, v_identity, v_comment,"
              " v_collation, v_sequence_schema, v_sequence_name, v_sequence_value, v_saved_sequence);").format(
                meta=meta, v=literal(ctx.version), t=literal(self.table), c=col, b=literal(backup)),
            S("ALTER TABLE {t} DROP COLUMN {c};").format(t=qualified(self.table), c=ident(self.column)),
            notice(ctx, f"dropped {self.table}.{self.column}; its values are kept in "
                        f"{ctx.backup_schema}.{backup} for rollback"),
        )
        declare = ["v_dependants text", "v_key text[]", "v_type text", "v_not_null boolean", "v_default text",
                   "v_ddl text[]", "v_identity text", "v_comment text", "v_collation text", "v_sequence text",
                   "v_sequence_value bigint", "v_saved_sequence text", "v_sequence_schema text",
                   "v_sequence_name text"]
        return [Step(self.kind, self.table, "ACCESS EXCLUSIVE", True, do_block(body, declare=declare),
                     f"drop column {self.column} of {self.table} (definition and values kept for rollback)")]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        table, column = self.table, self.column
        backup = f"{ctx.backup_schema}.{self._backup(ctx)}"
        saved = CheckQuery(
            f"The definition and every value of {table}.{column} are saved for the rollback ({backup})",
            checks.query(S("SELECT EXISTS (SELECT 1 FROM {meta} WHERE {w})\n    AND {copy} IS NOT NULL AS saved"
                           ).format(meta=dropped_columns_table(ctx), w=self._where(ctx),
                                    copy=S("pg_catalog.to_regclass({})").format(
                                        literal(render(ident(ctx.backup_schema, self._backup(ctx))))))),
            "true")
        return ChecklistItems(
            backups=[table],
            prerequisites=[
                checks.table_exists(table),
                checks.dependants(table, column, f"Nothing outside the table uses {table}.{column}: no view, no other "
                                                 "table's foreign key (the drop refuses otherwise)"),
                checks.has_primary_key(table),
                checks.relation_missing_check(backup, f"No copy left by an earlier drop of {table}.{column} by "
                                                      f"{ctx.label} that was never rolled back ({backup})"),
            ],
            notes=[f"Dropping {table}.{column} first copies every row's value to {backup}, then takes an ACCESS "
                   f"EXCLUSIVE lock on {table} to drop it. Stop the application writing {column} before this step: "
                   "a value written while the copy runs is not in the copy."],
            health_checks=[checks.column_gone(table, column), saved],
            rollback_notes=[f"The rollback re-adds {table}.{column} (at the end of the table) with its type, NOT NULL, "
                            f"default, constraints, indexes and every row's value from {backup}, then drops that "
                            "copy. Nothing the application wrote is overwritten (the column did not exist meanwhile): "
                            "rows inserted since the drop get the column default (NULL without one); a NOTICE reports "
                            "how many rows got their value back, how many were new and how many saved rows were "
                            "deleted since. It refuses, changing nothing, when a column of that name was added again "
                            "after the drop (save and drop it first) or when the column is NOT NULL without a default "
                            "and rows were inserted since."],
            durations=checks.durations(self.forward(ctx), "proportional to rows (every row's value is copied to "
                                                          "the backup schema, then the lock is taken for the drop)"))

    def _refusals(self, ctx: PlanContext) -> list[sql.Composable]:
        """The conditions on which the restore refuses (read-only; also the rollback's preflight)."""
        meta = dropped_columns_table(ctx)
        key = f"{self.table}.{self.column}"
        backup = f"{ctx.backup_schema}.{self._backup(ctx)}"
        return [
            if_then(relation_missing(self.table),
                    fail(ctx, f"cannot restore {key}: the table does not exist",
                         "Restore the table first (roll back later migrations), then re-run.")),
            # v_count: 1 while the saved copy is recorded (dropped_columns may not exist at all, so it is
            # read in its own statement, planned only when the table is there).
            S("v_count := 0;"),
            if_then(relation_exists(f"{ctx.backup_schema}.dropped_columns"),
                    S("SELECT count(*) INTO v_count FROM {meta} WHERE {w};").format(meta=meta, w=self._where(ctx))),
            # Present again while the copy is still kept: someone re-added it after the drop (this
            # rollback's own restore removes the copy in the same transaction). A column that a later
            # operation of this migration re-added is dropped by this rollback before the restore.
            if_then(S("{} AND v_count > 0 AND NOT {}").format(column_exists(self.table, self.column),
                                                               is_owned(ctx, "column", key)),
                    fail(ctx, f"cannot restore {key}: a column of that name was added again after {ctx.label} "
                              f"dropped it; its values before the drop are kept in {backup}",
                         f"Save what the re-added {key} holds and drop or rename it, then re-run the rollback; or, "
                         f"to keep the re-added column, drop {backup} and delete its row from "
                         f"{ctx.backup_schema}.dropped_columns.")),
            if_then(S("NOT {} AND v_count = 0").format(column_exists(self.table, self.column)),
                    fail(ctx, f"no saved copy of {key}; cannot restore it",
                         "The column was dropped outside this migration; restore it by hand.")),
            # NOT NULL without a default (or identity): rows inserted since the drop would get no value.
            # The query that counts them is built from the saved key columns (v_dependants holds it).
            if_then(S("NOT {} AND v_count > 0").format(column_exists(self.table, self.column)),
                    S("SELECT 'SELECT count(*) FROM ' || {qt} || ' AS t WHERE NOT EXISTS (SELECT 1 FROM '\n"
                      "    || pg_catalog.quote_ident({schema}) || '.' || pg_catalog.quote_ident(m.backup_table)"
                      " || ' AS b WHERE '\n"
                      "    || (SELECT pg_catalog.string_agg('t.' || pg_catalog.quote_ident(k) || ' = b.'"
                      " || pg_catalog.quote_ident(k), ' AND ') FROM pg_catalog.unnest(m.key_columns) k) || ')'\n"
                      "INTO v_dependants FROM {meta} AS m\n"
                      "WHERE {w} AND m.not_null AND (m.default_expr IS NULL OR m.identity_kind IN ('a', 'd'));"
                      ).format(qt=literal(render(qualified(self.table))), schema=literal(ctx.backup_schema),
                               meta=meta, w=self._where(ctx)),
                    if_then(S("v_dependants IS NOT NULL"),
                            S("EXECUTE v_dependants INTO v_count;"),
                            if_then(S("v_count > 0"),
                                    fail(ctx, f"cannot restore NOT NULL column {key} without a default: rows "
                                              "inserted since the drop have no value for it; rows:",
                                         f"Delete those rows, or restore {key} by hand from "
                                         f"{ctx.backup_schema}.dropped_columns and {backup}; the rollback changes "
                                         "nothing until then.", detail=S("v_count"))))),
        ]

    def rollback(self, ctx: PlanContext) -> list[Step]:
        """Re-add the column and put every saved value back.

        Nothing the application wrote is overwritten: while the column was gone nobody could write
        it, so every saved value goes back into its row (by primary key). Rows inserted since the
        drop get the column's default (NULL without one); a NOT NULL column without a default (or an
        identity column) cannot be restored over such rows, and the restore refuses naming them.
        Saved values of rows deleted since are counted and dropped with the copy. A NOTICE reports
        the three counts.
        """
        meta = dropped_columns_table(ctx)
        qt = literal(render(qualified(self.table)))
        qc = literal(render(ident(self.column)))
        key = f"{self.table}.{self.column}"
        backup_ref = S("pg_catalog.quote_ident({schema}) || '.' || pg_catalog.quote_ident(v_saved.backup_table)"
                       ).format(schema=literal(ctx.backup_schema))
        key_match = S("(SELECT pg_catalog.string_agg('t.' || pg_catalog.quote_ident(k) || ' = b.'"
                      " || pg_catalog.quote_ident(k), ' AND ') FROM pg_catalog.unnest(v_saved.key_columns) k)")
        body = block(
            *self._refusals(ctx),
            if_then(column_exists(self.table, self.column),
                    notice(ctx, f"column {key} is present; nothing to restore"),
                    S("RETURN;")),
            S("SELECT * INTO v_saved FROM {meta} WHERE {w};").format(meta=meta, w=self._where(ctx)),
            # Rows inserted since the drop (no saved value) and saved rows deleted since.
            S("EXECUTE 'SELECT count(*) FROM ' || {qt} || ' AS t WHERE NOT EXISTS (SELECT 1 FROM ' || {b}\n"
              "    || ' AS b WHERE ' || {km} || ')' INTO v_new;").format(qt=qt, b=backup_ref, km=key_match),
            S("EXECUTE 'SELECT count(*) FROM ' || {b} || ' AS b WHERE NOT EXISTS (SELECT 1 FROM ' || {qt}\n"
              "    || ' AS t WHERE ' || {km} || ')' INTO v_gone;").format(qt=qt, b=backup_ref, km=key_match),
            if_then(S("v_saved.saved_sequence IS NOT NULL"),
                    S("EXECUTE 'ALTER SEQUENCE ' || pg_catalog.quote_ident({s}) || '.' "
                      "|| pg_catalog.quote_ident(v_saved.saved_sequence) || ' SET SCHEMA '"
                      " || pg_catalog.quote_ident(v_saved.sequence_schema);").format(s=literal(ctx.backup_schema)),
                    S("EXECUTE 'ALTER SEQUENCE ' || pg_catalog.quote_ident(v_saved.sequence_schema) || '.'"
                      " || pg_catalog.quote_ident(v_saved.saved_sequence)"
                      " || ' RENAME TO ' || pg_catalog.quote_ident(v_saved.sequence_name);"),
                    acl.put_back(ctx.backup_schema, S(
                        "pg_catalog.to_regclass(pg_catalog.quote_ident(v_saved.sequence_schema) || '.'"
                        " || pg_catalog.quote_ident(v_saved.sequence_name))"), S("v_saved.saved_sequence"))),
            S("EXECUTE 'ALTER TABLE ' || {qt} || ' ADD COLUMN ' || {qc} || ' ' || v_saved.column_type\n"
              "    || COALESCE(' COLLATE ' || v_saved.collation_name, '');").format(qt=qt, qc=qc),
            S("EXECUTE 'UPDATE ' || {qt} || ' AS t SET ' || {qc} || ' = b.' || {qc}\n"
              "    || ' FROM ' || {b} || ' AS b WHERE '\n"
              "    || {km};").format(qt=qt, qc=qc, b=backup_ref, km=key_match),
            S("GET DIAGNOSTICS v_restored = ROW_COUNT;"),
            # The default first, so rows inserted since the drop get it (as if the column had stayed).
            if_then(S("v_saved.default_expr IS NOT NULL"),
                    S("EXECUTE 'ALTER TABLE ' || {qt} || ' ALTER COLUMN ' || {qc} || ' SET DEFAULT '"
                      " || v_saved.default_expr;").format(qt=qt, qc=qc),
                    if_then(S("v_new > 0"),
                            S("EXECUTE 'UPDATE ' || {qt} || ' AS t SET ' || {qc} || ' = DEFAULT WHERE NOT EXISTS"
                              " (SELECT 1 FROM ' || {b}\n    || ' AS b WHERE ' || {km} || ')';").format(
                                qt=qt, qc=qc, b=backup_ref, km=key_match))),
            if_then(S("v_saved.not_null"),
                    S("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL;").format(
                        t=qualified(self.table), c=ident(self.column))),
            if_then(S("v_saved.identity_kind IN ('a', 'd')"),
                    S("EXECUTE 'ALTER TABLE ' || {qt} || ' ALTER COLUMN ' || {qc} || ' ADD GENERATED '\n"
                      "    || CASE v_saved.identity_kind WHEN 'a' THEN 'ALWAYS' ELSE 'BY DEFAULT' END"
                      " || ' AS IDENTITY';").format(qt=qt, qc=qc),
                    if_then(S("v_saved.sequence_value IS NOT NULL"),
                            S("PERFORM pg_catalog.setval(pg_catalog.pg_get_serial_sequence({qt}, {c}),"
                              " v_saved.sequence_value);").format(qt=qt, c=literal(self.column)))),
            if_then(S("v_saved.saved_sequence IS NOT NULL"),
                    S("EXECUTE 'ALTER SEQUENCE ' || pg_catalog.quote_ident(v_saved.sequence_schema) || '.'"
                      " || pg_catalog.quote_ident(v_saved.sequence_name) || ' OWNED BY ' || {qt} || '.' || {qc};"
                      ).format(qt=qt, qc=qc)),
            if_then(S("v_saved.column_comment IS NOT NULL"),
                    S("EXECUTE 'COMMENT ON COLUMN ' || {qt} || '.' || {qc} || ' IS '"
                      " || pg_catalog.quote_literal(v_saved.column_comment);").format(qt=qt, qc=qc)),
            S("FOREACH v_statement IN ARRAY COALESCE(v_saved.restore_ddl, ARRAY[]::text[]) LOOP\n"
              "    EXECUTE v_statement;\nEND LOOP;"),
            S("EXECUTE 'DROP TABLE ' || {b};").format(b=backup_ref),
            S("DELETE FROM {meta} WHERE {w};").format(meta=meta, w=self._where(ctx)),
            S("RAISE NOTICE '%', {m1} || v_restored || {m2} || v_new || {m3} || v_gone || {m4};").format(
                m1=literal(f"dbdeploy {ctx.label}: restored column {key}: the saved values of "),
                m2=literal(" row(s) put back; "),
                m3=literal(" row(s) inserted since the drop got the column default (NULL without one); the saved "
                           "values of "),
                m4=literal(" row(s) deleted since were dropped with the copy")),
        )
        return [Step("restore_column", self.table, "ACCESS EXCLUSIVE", True,
                     do_block(body, declare=["v_saved record", "v_statement text", "v_count bigint",
                                             "v_dependants text", "v_restored bigint", "v_new bigint",
                                             "v_gone bigint"]),
                     f"restore column {self.column} of {self.table} with every row's value")]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        """The restore's refusals, checked before the rollback changes anything: no saved definition,
        the saved values' table removed, or a NOT NULL column without a default and rows inserted
        since the drop that have no saved value (SET NOT NULL would fail after the column was re-added).

        Checked only while the table exists and lacks the column: an absent table may be restored
        by an earlier step of the same rollback (a later DropTable), so the restore step's own check
        stays the guard for that case.
        """
        meta = dropped_columns_table(ctx)
        missing = S("NOT EXISTS (SELECT 1 FROM {meta} WHERE {w})").format(meta=meta, w=self._where(ctx))
        no_copy = fail(ctx, f"no saved copy of {self.table}.{self.column}; cannot restore it",
                       "The column was dropped outside this migration; restore it by hand.")
        saved_copy = S(
            "(SELECT pg_catalog.quote_ident({schema}) || '.' || pg_catalog.quote_ident(m.backup_table)"
            " FROM {meta} m WHERE {w})").format(schema=literal(ctx.backup_schema), meta=meta, w=self._where(ctx))
        unsaved = S(
            "EXECUTE 'SELECT count(*) FROM ' || {qt} || ' AS t WHERE NOT EXISTS (SELECT 1 FROM ' || {copy}\n"
            "    || ' AS b WHERE ' || (SELECT pg_catalog.string_agg('t.' || pg_catalog.quote_ident(k) || ' = b.'"
            " || pg_catalog.quote_ident(k), ' AND ') FROM {meta} m, pg_catalog.unnest(m.key_columns) k WHERE {w})"
            " || ')' INTO v_count;").format(qt=literal(render(qualified(self.table))), copy=saved_copy, meta=meta,
                                           w=self._where(ctx))
        return [if_then(
            S("{} AND NOT {}").format(relation_exists(self.table), column_exists(self.table, self.column)),
            if_then(relation_missing(f"{ctx.backup_schema}.dropped_columns"), no_copy),
            if_then(missing, no_copy),
            if_then(S("pg_catalog.to_regclass({}) IS NULL").format(saved_copy),
                    fail(ctx, f"the saved values of {self.table}.{self.column} are missing from "
                              f"{ctx.backup_schema}; cannot restore them",
                         "Restore the backup table from a database backup, or restore the column by hand.")),
            # Rows inserted since the drop have no saved value: a NOT NULL column without a default (or an
            # identity column) cannot take them.
            if_then(S("(SELECT m.not_null AND (m.default_expr IS NULL OR m.identity_kind IN ('a', 'd'))"
                      " FROM {meta} m WHERE {w})").format(meta=meta, w=self._where(ctx)),
                    unsaved,
                    if_then(S("v_count > 0"),
                            fail(ctx, f"cannot restore NOT NULL column {self.table}.{self.column} without a default: "
                                      "rows inserted since the drop have no saved value; rows:",
                                 f"Delete those rows or restore {self.column} by hand, then re-run the rollback.",
                                 detail=S("v_count")))),
        ), self._readded_refusal(ctx)]

    def _readded_refusal(self, ctx: PlanContext) -> sql.Composable:
        """Refuse while a column of the dropped column's name was added again after the drop (by hand or
        a later migration) and the saved copy is still kept; a column a later operation of this same
        migration re-added is dropped by this rollback first, so it does not count."""
        key = f"{self.table}.{self.column}"
        backup = f"{ctx.backup_schema}.{self._backup(ctx)}"
        kept = S("EXISTS (SELECT 1 FROM {meta} WHERE {w})").format(meta=dropped_columns_table(ctx),
                                                                    w=self._where(ctx))
        return if_then(
            S("{} AND {} AND NOT {}").format(column_exists(self.table, self.column),
                                              relation_exists(f"{ctx.backup_schema}.dropped_columns"),
                                              is_owned(ctx, "column", key)),
            if_then(kept, fail(ctx, f"cannot restore {key}: a column of that name was added again after "
                                    f"{ctx.label} dropped it; its values before the drop are kept in {backup}",
                               f"Save what the re-added {key} holds and drop or rename it, then re-run the "
                               f"rollback; or, to keep the re-added column, drop {backup} and delete its row from "
                               f"{ctx.backup_schema}.dropped_columns.")))
