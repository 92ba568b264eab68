"""SeedRows: reference data inserted with ON CONFLICT DO NOTHING; rollback removes only the rows
this migration inserted and nobody changed since (recorded with a per-row digest at insert time),
after copying them to the backup schema.

Two forms of the same forward (both tested):

- up to :data:`COPY_MIN_ROWS` rows: one readable ``INSERT … VALUES`` statement;
- more rows: the rows as ``COPY … FROM STDIN`` text-format data inside the step (the format psql
  runs natively: data lines after the statement, ended by a line ``\\.``), loaded into a temporary
  staging table and inserted from there. The manifest, generated test and checklist then hold a
  count and a sha256 of the data instead of every row.

After explicit values went into a column whose default draws from a sequence it owns (identity or
serial, found with ``pg_get_serial_sequence``), the forward moves that sequence past them.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import itertools
import json
import math
import operator
import uuid
from typing import Annotated, Any, ClassVar

from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import PrivateAttr, SkipValidation, field_validator, model_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import ColumnList, TableName
from dbdeploy.model.names import check_identifier, split_table
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState, SeededRows
from dbdeploy.ops.common import (
    S,
    backup_name,
    backup_table,
    copy_to_timestamped_backup,
    fail,
    regclass,
    relation_exists,
    relation_missing,
    released_foreign_key,
    rollback_backup_prefix,
)
from dbdeploy.sql import acl, ident, literal, qualified, render
from dbdeploy.sql.blocks import block, do_block, do_block_sql, if_then

_SCALARS = (str, int, float, bool, decimal.Decimal, datetime.date, datetime.datetime, datetime.time,
            uuid.UUID, type(None))
_PLAIN = frozenset({int, float, bool, type(None), decimal.Decimal, datetime.date, datetime.datetime,
                    datetime.time, uuid.UUID})

# Seeds with more rows than this are loaded with COPY … FROM STDIN and described by a digest. The SQL
# around the data stays ASCII: one wider character makes CPython store the whole step text (and
# every copy of it while the bundle is rendered) at two or four bytes per character.
COPY_MIN_ROWS = 1000

# Session settings that change a row's text form; the per-row digest is taken with these pinned so
# that forward and rollback compare like with like whatever the sessions' settings are.
DIGEST_SETTINGS = (("DateStyle", "ISO, MDY"), ("IntervalStyle", "postgres"), ("TimeZone", "UTC"),
                   ("extra_float_digits", "1"), ("bytea_output", "hex"))
_SETTING_NAMES = {"DateStyle": S("DateStyle"), "IntervalStyle": S("IntervalStyle"), "TimeZone": S("TimeZone"),
                  "extra_float_digits": S("extra_float_digits"), "bytea_output": S("bytea_output")}

_SERIAL_TYPES = frozenset({"smallserial", "serial", "bigserial", "serial2", "serial4", "serial8"})


class SeedRows(Operation):
    """Insert reference rows unless a row with the same ``conflict_columns`` key exists.

    ``rows`` are dicts column → value (str, int, float, bool, Decimal, date/datetime/time, UUID,
    None, or dict/list for jsonb); a column a row leaves out gets its DEFAULT. Raises ValueError
    (reported with the spec file and field) for empty rows, bad column names, NUL bytes and
    unsupported value types.
    """

    kind: ClassVar[str] = "seed_rows"
    table: TableName
    # Checked by _rows below without pydantic's copy of every row (200,000 rows: half the memory).
    rows: Annotated[list[dict[str, Any]], SkipValidation]
    conflict_columns: ColumnList
    _rendered: dict = PrivateAttr(default_factory=dict)   # COPY data per column group, rendered once

    @field_validator("rows")
    @classmethod
    def _rows(cls, value: Any) -> list[dict[str, Any]]:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ValueError(f"rows must be a list of dicts (column → value), not {type(value).__name__} — fix: "
                             "write rows=[{...}, ...]")
        if not value:
            raise ValueError("rows must list at least one row — fix: add a row, or remove the SeedRows")
        # Column by column with C-level passes where the values allow; any doubt falls back to the
        # row-by-row check, which names the first bad row.
        if set(map(type, value)) != {dict} or not all(value):
            _check_rows_slowly(value)
        columns = dict.fromkeys(itertools.chain.from_iterable(value))
        for column in columns:
            if not isinstance(column, str):
                _check_rows_slowly(value)
            check_identifier(column, "rows column")
        for column in columns:
            cells = [row[column] for row in value if column in row]
            kinds = set(map(type, cells))
            if kinds <= _PLAIN:
                continue
            if kinds <= _PLAIN | {str}:
                if "\x00" not in "".join([c for c in cells if type(c) is str]):
                    continue
            elif kinds <= _PLAIN | {str, dict, list} and all(map(_json_fast_ok, cells)):
                continue
            _check_rows_slowly(value)
        if any(column.startswith('"') for column in columns):    # quoted columns stand for their exact names
            value = [{check_identifier(column): cell for column, cell in row.items()} for row in value]
        return value

    @model_validator(mode="after")
    def _conflict_columns_given(self) -> SeedRows:
        rows = self.rows
        for key in self.conflict_columns:
            if not all(map(operator.contains, rows, itertools.repeat(key))):
                i = next(i for i, row in enumerate(rows) if key not in row)
                missing = [c for c in self.conflict_columns if c not in rows[i]]
                raise ValueError(f"rows[{i}] has no value for conflict column(s) {', '.join(missing)} — fix: give "
                                 "every row a value for each conflict column")
            # A NULL key never conflicts and never equals the recorded key: a re-run would insert the
            # row again and the rollback could not find it (it would count it as already gone).
            if not all(row[key] is not None for row in rows):
                i = next(i for i, row in enumerate(rows) if row[key] is None)
                raise ValueError(f"rows[{i}] has None (NULL) for conflict column {key}: a NULL key never conflicts, "
                                 "so a re-run would insert the row again and the rollback could not find it by its "
                                 "key — fix: give every row a non-NULL value for each conflict column")
        return self

    @property
    def columns(self) -> list[str]:
        """Every column some row sets, in order of first appearance."""
        if "columns" not in self._rendered:
            self._rendered["columns"] = list(dict.fromkeys(itertools.chain.from_iterable(self.rows)))
        return list(self._rendered["columns"])

    @property
    def uses_copy(self) -> bool:
        """True when the rows go in as COPY data (more than :data:`COPY_MIN_ROWS` rows)."""
        return len(self.rows) > COPY_MIN_ROWS

    def apply(self, state: SchemaState) -> None:
        state.require_columns(self.table, self.columns, "rows")

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        log = f"{ctx.backup_schema}.{self._log_name(ctx)}"
        if not self.uses_copy:
            return [expect.SeedRows(self.table, log, tuple(self.conflict_columns), rows=tuple(self.rows))]
        from dbdeploy.bundle.manifest import file_names

        forward_file = file_names(f"V{ctx.version}__{ctx.migration_name}", ctx.version, ctx.migration_name)[0]
        data = [{"copy": render(_copy_statement(ctx, n, columns)), "columns": list(columns),
                 "rows": count, "sha256": digest}
                for n, (columns, count, digest) in enumerate(self._copy_digests(), 1)]
        return [expect.SeedRows(self.table, log, tuple(self.conflict_columns), count=len(self.rows),
                                copy_file=forward_file, copy_data=tuple(data))]

    def _log_table(self, ctx: PlanContext):
        return backup_table(ctx, self._log_name(ctx))

    def _log_name(self, ctx: PlanContext) -> str:
        return backup_name(ctx, f"op{ctx.index}", "seeded", split_table(self.table)[1])

    # --- forward ---------------------------------------------------------------------------

    def forward(self, ctx: PlanContext) -> list[Step]:
        cached = self._rendered.get("forward")
        if cached is not None and cached[0] is ctx:     # planning and the checklist ask with the same ctx
            return cached[1]
        summary = f"constant ({len(self.rows)} row(s){', COPY data' if self.uses_copy else ''})"
        steps = scaled(self._forward(ctx), summary)
        self._rendered["forward"] = (ctx, steps)
        return steps

    def _forward(self, ctx: PlanContext) -> list[Step]:
        keys = S(", ").join(ident(c) for c in self.conflict_columns)
        log = self._log_table(ctx)
        schema, name = split_table(self.table)
        statements: list[sql.Composable | str] = [
            S("CREATE TABLE IF NOT EXISTS {log} AS SELECT {keys}, NULL::text AS row_digest FROM {t} WITH NO DATA;"
              ).format(log=log, keys=keys, t=qualified(self.table)),
            acl.do_sql(acl.restrict_table(log)),
            # Found by the rollback preflight of this migration's other seeds (rows it deletes first).
            S("COMMENT ON TABLE {log} IS {text};").format(
                log=log, text=literal(f"dbdeploy seed log|{ctx.version}|{ctx.index}|{schema}.{name}")),
        ]
        overriding = S(" OVERRIDING SYSTEM VALUE") if self._may_hit_identity(ctx) else S("")
        if self.uses_copy:
            text = render(block(*statements))
            parts = [text]
            for n, (columns, _count, data, _digest) in enumerate(self._copy_groups(), 1):
                stage = _stage(ctx, n)
                parts.append(render(S(
                    "CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {t} WITH NO DATA;").format(
                    stage=stage, cols=_names(columns), t=qualified(self.table))))
                parts.append(render(_copy_statement(ctx, n, columns)))
                parts.append(data)          # its last line, then the end-of-data line
                parts.append("\\.")
                parts.append(render(self._insert(ctx, columns, S("SELECT {cols} FROM {stage}").format(
                    cols=_names(columns), stage=stage), overriding)))
            parts.append(render(block(*self._after_insert(ctx))))
            return [Step(self.kind, self.table, "ROW EXCLUSIVE", True, "\n".join(parts),
                         f"insert {len(self.rows)} seed row(s) into {self.table} unless present (COPY data)")]
        columns = self.columns
        values = S(",\n    ").join(
            S("({})").format(S(", ").join(_value(row[c]) if c in row else S("DEFAULT") for c in columns))
            for row in self.rows)
        statements.append(self._insert(ctx, columns, S("VALUES\n    {values}").format(values=values), overriding))
        statements += self._after_insert(ctx)
        return [Step(self.kind, self.table, "ROW EXCLUSIVE", True, render(block(*statements)),
                     f"insert {len(self.rows)} seed row(s) into {self.table} unless present")]

    def _insert(self, ctx: PlanContext, columns, source: sql.Composable, overriding: sql.Composable):
        keys = S(", ").join(ident(c) for c in self.conflict_columns)
        return S("WITH inserted AS (\n    INSERT INTO {t} ({cols}){overriding} {source}\n"
                 "    ON CONFLICT ({keys}) DO NOTHING\n    RETURNING {keys}\n)\n"
                 "INSERT INTO {log} ({keys}) SELECT {keys} FROM inserted;").format(
            t=qualified(self.table), cols=_names(columns), overriding=overriding, source=source, keys=keys,
            log=self._log_table(ctx))

    def _after_insert(self, ctx: PlanContext) -> list[sql.Composable]:
        """Record each inserted row's digest (settings pinned, after the insert so they cannot change how
        its values were read), then move identity/serial sequences past the explicit values."""
        match = S(" AND ").join(S("s.{c} = l.{c}").format(c=ident(c)) for c in self.conflict_columns)
        out: list[sql.Composable] = []
        if self.table not in ctx.rollback_drops:    # a table the rollback drops is never compared row by row
            out += [S("SET LOCAL {} = {};").format(_SETTING_NAMES[n], literal(v)) for n, v in DIGEST_SETTINGS]
            out.append(S("UPDATE {log} AS l SET row_digest = pg_catalog.md5(s::text) FROM {t} AS s\n"
                         "WHERE l.row_digest IS NULL AND {match};").format(
                log=self._log_table(ctx), t=qualified(self.table), match=match))
        sequenced = [c for c in self.columns if self._may_own_sequence(ctx, c)]
        if sequenced:
            out.append(do_block_sql(S("\n").join(_advance_sequence(ctx, self.table, c) for c in sequenced),
                                    declare=["v_seq text", "v_inc bigint", "v_min bigint", "v_max bigint",
                                             "v_last bigint", "v_called boolean", "v_next numeric",
                                             "v_top numeric"]))
        return out

    def _may_hit_identity(self, ctx: PlanContext) -> bool:
        """Explicit values may go into an identity column: a table the specs do not know (it may have
        GENERATED ALWAYS columns) or a known identity column among the seeded ones."""
        state = ctx.state.tables.get(self.table)
        if state is None:
            return True
        return any(c in state.columns and state.columns[c].identity for c in self.columns)

    def _may_own_sequence(self, ctx: PlanContext, column: str) -> bool:
        state = ctx.state.tables.get(self.table)
        if state is None or column not in state.columns:
            return True
        spec = state.columns[column]
        return bool(spec.identity or spec.type.lower() in _SERIAL_TYPES
                    or (spec.default and "nextval" in spec.default.lower()))

    def _copy_groups(self) -> list[tuple[tuple[str, ...], int, str, str]]:
        """Rows grouped by the columns they set (COPY cannot say DEFAULT): (columns, row count, COPY text
        data, its sha256), in order of first appearance. The data is rendered on each call (the forward
        keeps it in its step; the digests alone are kept here for expects())."""
        order = self.columns
        groups: dict[tuple[str, ...], list[dict]] = {}
        for row in self.rows:
            columns = tuple(row) if list(row) == order else tuple(c for c in order if c in row)
            groups.setdefault(columns, []).append(row)
        out = []
        for columns, rows in groups.items():
            data = _copy_data(columns, rows)
            digest = hashlib.sha256(data.encode("utf-8"))
            digest.update(b"\n")                  # sha256 of the data lines, each ending in a newline
            out.append((columns, len(rows), data, digest.hexdigest()))
        self._rendered["digests"] = [(c, n, d) for c, n, _data, d in out]
        return out

    def _copy_digests(self) -> list[tuple[tuple[str, ...], int, str]]:
        if "digests" not in self._rendered:
            self._copy_groups()
        return self._rendered["digests"]

    # --- rollback --------------------------------------------------------------------------

    def _match(self, ctx: PlanContext, alias: str = "d") -> sql.Composable:
        return S(" AND ").join(S("{a}.{c} = l.{c}").format(a=ident(alias), c=ident(c)) for c in self.conflict_columns)

    def _cascading(self, ctx: PlanContext) -> sql.Composable:
        """Other tables' FKs to this table whose ON DELETE would change their rows (NULL if none);
        tables this rollback drops are left out (their rows that reference seed rows keep them)."""
        return S(
            "(SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I (foreign key %I)', n.nspname, r.relname,"
            " c.conname), ', ' ORDER BY n.nspname, r.relname, c.conname)"
            " FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class r ON r.oid = c.conrelid"
            " JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
            " WHERE c.contype = 'f' AND c.confrelid = {rel}"
            " AND c.conrelid <> c.confrelid AND c.confdeltype IN ('c', 'n', 'd')"
            " AND NOT {dropped})").format(rel=regclass(self.table), dropped=_in_drops(ctx, S("c.conrelid")))

    def rollback_preflight(self, ctx: PlanContext) -> list[sql.Composable]:
        """Refuse before any change when deleting the seed rows would fail or change other tables: other
        tables' FKs with ON DELETE CASCADE/SET NULL/SET DEFAULT, and rows of other tables (or of this
        one) that reference a seed row the rollback deletes — leaving out tables this rollback drops and
        seed rows this migration's later SeedRows delete first. Only reads (settings pinned for the
        digests are restored)."""
        if self.table in ctx.rollback_drops:
            return []
        log = f"{ctx.backup_schema}.{self._log_name(ctx)}"
        refusal = fail(ctx, f"refusing to roll back: deleting the seed rows of {self.table} would fail or "
                            "change other tables; these reference them:",
                       "Delete or re-point the referencing rows (or drop the foreign keys) first, then re-run "
                       "the rollback; nothing was changed.", detail=S("v_dependants"))
        return [if_then(
            S("{} AND {}").format(relation_exists(self.table), relation_exists(log)),
            S("v_dependants := {};").format(self._cascading(ctx)),
            if_then(S("v_dependants IS NOT NULL"),
                    fail(ctx, f"refusing to roll back: deleting the seed rows of {self.table} would change rows "
                              "through foreign keys with ON DELETE CASCADE/SET NULL/SET DEFAULT in",
                         "Delete or re-point the referencing rows first (or drop those foreign keys), then re-run "
                         "the rollback; nothing was changed.", detail=S("v_dependants"))),
            self._referencing_rows_check(ctx),
            if_then(S("v_dependants IS NOT NULL"), refusal),
        )]

    def _referencing_rows_check(self, ctx: PlanContext) -> sql.Composable:
        """Sets ``v_dependants`` to 'table (n rows)' for every FK (not from a table this rollback drops)
        whose rows reference a seed row the rollback would delete; NULL when there are none."""
        deleted = S("SELECT {cols} FROM {t} AS d JOIN {log} AS l ON {m} WHERE pg_catalog.md5(d::text) = l.row_digest"
                    ).format(cols=S("{refcols}"), t=qualified(self.table), log=self._log_table(ctx),
                             m=self._match(ctx))
        template = render(deleted).replace("%", "%%").replace("{refcols}", "%s")
        settings = S("\n").join(S("        PERFORM pg_catalog.set_config({}, {}, true);").format(literal(n), literal(v))
                                for n, v in DIGEST_SETTINGS)
        restore = S("\n").join(S("        PERFORM pg_catalog.set_config({}, v_saved[{}], true);").format(
            literal(n), literal(i)) for i, (n, _v) in enumerate(DIGEST_SETTINGS, 1))
        saved = S(", ").join(S("pg_catalog.current_setting({})").format(literal(n)) for n, _v in DIGEST_SETTINGS)
        return S("""DECLARE
    v_fk record;
    v_sql text;
    v_n bigint;
    v_saved text[] := ARRAY[{saved}];
BEGIN
    v_dependants := NULL;
{settings}
    FOR v_fk IN
        SELECT c.conrelid, c.conname,
               (SELECT pg_catalog.format('%I.%I', n.nspname, t.relname) FROM pg_catalog.pg_class t
                JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace WHERE t.oid = c.conrelid) AS relname,
               (SELECT pg_catalog.string_agg(pg_catalog.format('r.%I', a.attname), ', ' ORDER BY k.ord)
                FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS fkcols,
               (SELECT pg_catalog.string_agg(pg_catalog.format('d.%I', a.attname), ', ' ORDER BY k.ord)
                FROM pg_catalog.unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord)
                JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum) AS refcols,
               (SELECT pg_catalog.string_agg(pg_catalog.format(
                    ' AND NOT EXISTS (SELECT 1 FROM %s AS x WHERE x.row_digest = pg_catalog.md5(r::text))',
                    lc.oid::pg_catalog.regclass), '' ORDER BY lc.oid)
                FROM pg_catalog.pg_class lc
                JOIN pg_catalog.pg_description ld ON ld.objoid = lc.oid AND ld.objsubid = 0
                     AND ld.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
                WHERE lc.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace
                                         WHERE nspname = {backup_schema})
                  AND pg_catalog.split_part(ld.description, '|', 1) = 'dbdeploy seed log'
                  AND pg_catalog.split_part(ld.description, '|', 2) = {version}
                  AND pg_catalog.split_part(ld.description, '|', 3) ~ '^[0-9]+$'
                  AND pg_catalog.split_part(ld.description, '|', 3)::int >= {index}
                  AND pg_catalog.split_part(ld.description, '|', 4) =
                      (SELECT n.nspname || '.' || r.relname FROM pg_catalog.pg_class r
                       JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace WHERE r.oid = c.conrelid)
               ) AS skip
        FROM pg_catalog.pg_constraint c
        WHERE c.contype = 'f' AND c.confrelid = {rel}
          AND NOT {dropped}
          AND NOT {released}
        ORDER BY 3, c.conname
    LOOP
        v_sql := pg_catalog.format('SELECT pg_catalog.count(*) FROM %s AS r WHERE (%s) IN ('
                                   || {template} || ')%s',
                                   v_fk.relname, v_fk.fkcols, v_fk.refcols,
                                   COALESCE(v_fk.skip, ''));
        EXECUTE v_sql INTO v_n;
        IF v_n > 0 THEN
            v_dependants := pg_catalog.concat_ws(', ', v_dependants,
                v_fk.relname || ' (' || v_n || ' row(s), foreign key ' || v_fk.conname || ')');
        END IF;
    END LOOP;
{restore}
END;""").format(
            saved=saved, settings=settings, backup_schema=literal(ctx.backup_schema), version=literal(ctx.version),
            index=literal(ctx.index), rel=regclass(self.table), dropped=_in_drops(ctx, S("c.conrelid")),
            released=released_foreign_key(ctx, "c"), template=literal(template), restore=restore)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        log = self._log_table(ctx)
        log_name = f"{ctx.backup_schema}.{self._log_name(ctx)}"
        if self.table in ctx.rollback_drops:
            # The table's own drop copies every row out: only the bookkeeping goes here.
            return [Step("drop_seed_log", log_name, "ACCESS EXCLUSIVE", True,
                         do_block(S("DROP TABLE IF EXISTS {log};").format(log=log)),
                         f"drop the seed log of {self.table} (the rollback drops the table itself, rows copied out)")]
        t = qualified(self.table)
        match = self._match(ctx)
        unchanged = S("pg_catalog.md5(d::text) IS NOT DISTINCT FROM l.row_digest")
        todo_match = S(" AND ").join(S("d.{c} = k.{c}").format(c=ident(c)) for c in self.conflict_columns)
        prefix = rollback_backup_prefix(ctx.version, f"{split_table(self.table)[1]}_seed")
        body = block(
            if_then(S("{} OR {}").format(relation_missing(self.table), relation_missing(log_name)),
                    S("RETURN;")),
            # second guard (the preflight checked it before the rollback's first change)
            S("v_dependants := {};").format(self._cascading(ctx)),
            if_then(S("v_dependants IS NOT NULL"),
                    fail(ctx, f"refusing to delete seed rows of {self.table}: foreign keys with ON DELETE "
                              "CASCADE/SET NULL/SET DEFAULT would change rows in",
                         "Delete or re-point the referencing rows first, then re-run the rollback.",
                         detail=S("v_dependants"))),
            self._referencing_rows_check(ctx),
            if_then(S("v_dependants IS NOT NULL"),
                    fail(ctx, f"refusing to delete seed rows of {self.table}: rows of other tables reference them:",
                         "Delete or re-point the referencing rows first, then re-run the rollback.",
                         detail=S("v_dependants"))),
            *[S("PERFORM pg_catalog.set_config({}, {}, true);").format(literal(n), literal(v))
              for n, v in DIGEST_SETTINGS],
            # lock the recorded rows first, so none changes between the comparison and the delete
            S("PERFORM 1 FROM {t} AS d JOIN {log} AS l ON {match} FOR UPDATE OF d;").format(
                t=t, log=log, match=match),
            S("CREATE TEMP TABLE {todo} ON COMMIT DROP AS\n"
              "    SELECT {keys}, ({unchanged}) AS unchanged FROM {t} AS d JOIN {log} AS l ON {match};").format(
                todo=_todo(), keys=S(", ").join(S("d.{}").format(ident(c)) for c in self.conflict_columns),
                unchanged=unchanged, t=t, log=log, match=match),
            S("ANALYZE {todo};").format(todo=_todo()),
            S("SELECT pg_catalog.count(*) INTO v_found FROM {todo};").format(todo=_todo()),
            S("SELECT pg_catalog.count(*) INTO v_logged FROM {log};").format(log=log),
            self._keep_referenced_by_dropped(ctx),
            if_then(S("v_found > 0"),
                    copy_to_timestamped_backup(
                        ctx, f"{split_table(self.table)[1]}_seed",
                        S("SELECT d.*, CASE WHEN k.unchanged THEN 'deleted' ELSE 'left' END"
                          " AS dbdeploy_rollback_action FROM {t} AS d JOIN {todo} AS k ON {m}").format(
                            t=t, todo=_todo(), m=todo_match),
                        f"the seed rows of {self.table} (deleted and left ones, see column "
                        "dbdeploy_rollback_action)"),
                    S("DELETE FROM {t} AS d USING {todo} AS k WHERE k.unchanged AND {m};").format(
                        t=t, todo=_todo(), m=todo_match),
                    S("GET DIAGNOSTICS v_deleted = ROW_COUNT;"),
                    S("RAISE NOTICE '%', {msg} || v_deleted || ' seed row(s) deleted, ' || (v_found - v_deleted)"
                      " || ' left in place (changed since the forward, or referenced by rows of a table this "
                      "rollback drops), ' || (v_logged - v_found) || ' already gone; ' || v_found"
                      " || ' saved to ' || {schema} || '.' || v_backup;").format(
                        msg=literal(f"dbdeploy {ctx.label}: {self.table}: "), schema=literal(ctx.backup_schema)),
                    otherwise=[S("RAISE NOTICE '%', {msg} || v_logged || ' already gone';").format(
                        msg=literal(f"dbdeploy {ctx.label}: {self.table}: no seed row left to delete; "))]),
            S("DROP TABLE {todo};").format(todo=_todo()),
            S("DROP TABLE {log};").format(log=log),
        )
        return [Step("delete_seed_rows", self.table, "ROW EXCLUSIVE", True,
                     do_block(body, declare=["v_dependants text", "v_backup text", "v_found bigint",
                                             "v_logged bigint", "v_deleted bigint"]),
                     f"delete the unchanged seed rows {ctx.label} inserted into {self.table} (all copied out first; "
                     f"changed ones left) — backup {ctx.backup_schema}.{prefix}_<timestamp>")]

    def _keep_referenced_by_dropped(self, ctx: PlanContext) -> sql.Composable | None:
        """Seed rows referenced by rows of a table this rollback drops stay (marked not unchanged): their
        delete would fail or cascade into rows the drop is about to copy out."""
        if not ctx.rollback_drops:
            return None
        match = S(" AND ").join(S("d.{c} = k.{c}").format(c=ident(c)) for c in self.conflict_columns)
        return S("""DECLARE
    v_fk record;
BEGIN
    FOR v_fk IN
        SELECT c.conrelid,
               (SELECT pg_catalog.string_agg(pg_catalog.format('r.%I', a.attname), ', ' ORDER BY k.ord)
                FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS fkcols,
               (SELECT pg_catalog.string_agg(pg_catalog.format('d.%I', a.attname), ', ' ORDER BY k.ord)
                FROM pg_catalog.unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord)
                JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum) AS refcols
        FROM pg_catalog.pg_constraint c
        WHERE c.contype = 'f' AND c.confrelid = {rel} AND c.conrelid <> c.confrelid
          AND {dropped}
    LOOP
        EXECUTE pg_catalog.format({update}
                                  || ' WHERE k.unchanged AND ' || {match}
                                  || ' AND (%s) IN (SELECT %s FROM %s AS r)',
                                  {table}, v_fk.refcols, v_fk.fkcols,
                                  v_fk.conrelid::pg_catalog.regclass);
    END LOOP;
END;""").format(
            rel=regclass(self.table), dropped=_in_drops(ctx, S("c.conrelid")),
            update=literal(f"UPDATE {render(_todo())} AS k SET unchanged = false FROM %s AS d"),
            match=literal(render(match)), table=literal(render(qualified(self.table))))

    # --- checklist -------------------------------------------------------------------------

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        existing = self.table not in earlier.created_tables
        keys = list(self.conflict_columns)
        key_sql = S(", ").join(ident(c) for c in keys)
        log = f"{ctx.backup_schema}.{self._log_name(ctx)}"
        if self.uses_copy:
            distinct = _distinct_keys(self.rows, keys)
            present = CheckQuery(
                f"The {distinct} seed row(s) are in {self.table} (matched by {', '.join(keys)}; counted through "
                f"{log}, the keys {ctx.label} inserted; the generated test compares every row with the bundle's "
                "COPY data)",
                queries.query(S("SELECT count(*) AS seed_rows_present FROM {t}\nWHERE ({k}) IN (SELECT {k} FROM {log})"
                               ).format(t=qualified(self.table), k=key_sql, log=self._log_table(ctx))),
                str(distinct), otherwise=(f"fewer when some keys already existed in {self.table} before {ctx.label}"
                                          " (those rows are left as they were and not recorded)" if existing else ""))
        else:
            distinct_rows = sorted({tuple(repr(row[c]) for c in keys): row for row in self.rows
                                    if all(row[c] is not None for c in keys)}.items())
            tuples = [S("({})").format(S(", ").join(_value(row[c]) for c in keys)) for _, row in distinct_rows]
            present = CheckQuery(
                f"The {len(distinct_rows)} seed row(s) are in {self.table} (matched by {', '.join(keys)})",
                queries.query(S("SELECT count(*) AS seed_rows_present FROM {t}\nWHERE ({k}) IN ({v})").format(
                    t=qualified(self.table), k=key_sql, v=S(", ").join(tuples))), str(len(distinct_rows)))
        prerequisites = []
        if existing:
            prerequisites = [
                queries.table_exists(self.table),
                CheckQuery(f"{self.table} has a unique index on exactly ({', '.join(keys)}) (ON CONFLICT needs it)",
                           queries.query(_unique_index_exists(self.table, keys)), "true"),
            ]
        prefix = rollback_backup_prefix(ctx.version, f"{split_table(self.table)[1]}_seed")
        notes = []
        if existing:
            notes.append(f"Seed rows whose key already exists in {self.table} are left as they are (ON CONFLICT DO "
                         f"NOTHING); the keys {ctx.label} inserts are recorded in {log} with a digest of each row.")
        if self._may_hit_identity(ctx):
            notes.append(f"Explicit values for identity columns of {self.table} are inserted with OVERRIDING SYSTEM "
                         "VALUE (also into GENERATED ALWAYS identity columns).")
        if any(self._may_own_sequence(ctx, c) for c in self.columns):
            notes.append(f"After the insert, every sequence owned by a seeded column of {self.table} (identity or "
                         "serial) is moved past the column's largest value (smallest for a descending sequence); "
                         "never backwards. A value outside the sequence's MINVALUE/MAXVALUE stops the forward.")
        if self.table in ctx.rollback_drops:
            rollback_notes = [f"The rollback drops {self.table} itself (every row copied to the backup schema), so "
                              f"the seed rows are not deleted one by one; only {log} goes."]
        else:
            rollback_notes = [
                f"The rollback deletes only the seed rows {ctx.label} inserted into {self.table} (listed in {log}) "
                "that nobody changed since the forward (same row digest); rows the application changed since, and "
                "rows referenced by a table this rollback drops, are left in place. All of them are first copied to "
                f"{ctx.backup_schema}.{prefix}_<timestamp> (column dbdeploy_rollback_action says 'deleted' or "
                "'left'); a NOTICE gives the counts deleted / left / already gone and the backup's name.",
                "Before its first change the rollback refuses while other tables' foreign keys with ON DELETE "
                f"CASCADE/SET NULL/SET DEFAULT point at {self.table}, or rows of other tables reference a seed row "
                "it would delete.",
            ]
        return ChecklistItems(
            prerequisites=prerequisites, backups=[self.table] if existing else [],
            notes=notes, health_checks=[present], rollback_notes=rollback_notes,
            seeds=[SeededRows(self.table, tuple(self.rows))])


def _in_drops(ctx: PlanContext, relid: sql.Composable) -> sql.Composable:
    """SQL: the relation ``relid`` (an oid expression) is one of the tables this rollback drops."""
    drops = sorted(ctx.rollback_drops)
    if not drops:
        return S("false")
    return S("(SELECT n.nspname || '.' || r.relname FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n"
             " ON n.oid = r.relnamespace WHERE r.oid = {relid}) = ANY ({names})").format(
        relid=relid, names=S("ARRAY[{}]::text[]").format(
            S(", ").join(literal("{}.{}".format(*split_table(t))) for t in drops)))


def _todo() -> sql.Identifier:
    return ident("pg_temp", "dbdeploy_seed_rollback")


def _stage(ctx: PlanContext, group: int) -> sql.Identifier:
    return ident("pg_temp", f"dbdeploy_seed_op{ctx.index}_{group}")


def _copy_statement(ctx: PlanContext, group: int, columns) -> sql.Composable:
    return S("COPY {stage} ({cols}) FROM STDIN;").format(stage=_stage(ctx, group), cols=_names(columns))


def _names(columns) -> sql.Composable:
    return S(", ").join(ident(c) for c in columns)


def _distinct_keys(rows: list[dict], keys: list[str]) -> int:
    """How many distinct non-NULL keys the rows hold (values of different types count apart, as the
    VALUES form's repr-based count does: 1, 1.0 and True are three keys)."""
    columns = [[row[c] for row in rows] for c in keys]
    if all(len({type(v) for v in col} - {type(None)}) <= 1 for col in columns) and not any(
            isinstance(v, dict | list) for col in columns for v in col[:1]):
        return len({k for k in zip(*columns, strict=True) if None not in k})
    return len({tuple(json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else (type(v).__name__, v)
                      for v in k) for k in zip(*columns, strict=True) if None not in k})


# --- COPY text format ----------------------------------------------------------------------

_JSON = json.JSONEncoder(ensure_ascii=False)
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _copy_cell(value: Any) -> str:
    """One value in COPY text format, read by the column type's input function — the same value the
    VALUES form's literal gives (bool as true/false, floats with repr, jsonb as JSON text)."""
    kind = type(value)
    if value is None:
        return "\\N"
    if kind is str:
        return value.translate(_ESCAPES)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, dict | list):
        return _JSON.encode(value).translate(_ESCAPES)
    if isinstance(value, datetime.datetime | datetime.time):
        return value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else value.isoformat()
    return str(value).translate(_ESCAPES)


def _copy_column(values: list) -> list[str]:
    """One column's values as COPY text cells, a whole column at a time where the values share a type
    (escaping one joined string is much faster than escaping 200,000 small ones)."""
    kinds = set(map(type, values))
    if len(kinds) == 1 and next(iter(kinds)) in _TEXT_OF:
        return list(map(_TEXT_OF[next(iter(kinds))], values))
    if kinds <= _TEXT_OF.keys():
        return [_TEXT_OF[type(v)](v) for v in values]
    if kinds <= {str, dict, list} and kinds & {str, dict, list}:
        encode = _JSON.encode
        texts = [v if type(v) is str else encode(v) for v in values]
        joined = "\x00".join(texts)                            # NUL never occurs in a seed value
        for raw, escaped in (("\\", "\\\\"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
            if raw in joined:
                joined = joined.replace(raw, escaped)
        return joined.split("\x00")
    return [_copy_cell(v) for v in values]


# Value types whose COPY text never needs escaping, and how to write them (as _copy_cell does).
_TEXT_OF = {
    int: int.__repr__, bool: lambda v: "true" if v else "false", type(None): lambda _v: "\\N",
    decimal.Decimal: decimal.Decimal.__str__, datetime.date: datetime.date.isoformat,
    datetime.datetime: lambda v: v.isoformat(sep=" "), datetime.time: datetime.time.isoformat,
    uuid.UUID: uuid.UUID.__str__,
    float: lambda v: repr(v) if math.isfinite(v) else _copy_cell(v),
}


def _copy_data(columns: tuple[str, ...], rows: list[dict]) -> str:
    """The rows as COPY text data, one line per row (no newline after the last). A line never starts with
    ``-`` (written ``\\-``, which COPY reads as ``-``), so no data line looks like a comment or a
    step marker to a line-oriented reader."""
    chunks = []
    for start in range(0, len(rows), 10_000):       # bounded temporaries: one chunk's cells at a time
        part = rows[start:start + 10_000]
        cells = [_copy_column([row[c] for row in part]) for c in columns]
        chunks.append("\n".join(map("\t".join, zip(*cells, strict=True))))
    text = "\n".join(chunks)
    del chunks
    if text.startswith("-") or "\n-" in text:
        text = ("\\-" + text[1:] if text.startswith("-") else text).replace("\n-", "\n\\-")
    return text


# --- helpers shared with the checklist -----------------------------------------------------

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


def _check_rows_slowly(value: list) -> None:
    """Row by row: raise ValueError naming the first bad row, column and the fix."""
    for i, row in enumerate(value):
        if type(row) is not dict:
            raise ValueError(f"rows[{i}] must be a dict (column → value), not {type(row).__name__} — fix: "
                             "write the row as {\"column\": value, ...}")
        if not row:
            raise ValueError(f"rows[{i}] is empty — fix: give the row its column values")
        for column, cell in row.items():
            if not isinstance(column, str):
                raise ValueError(f"rows[{i}]: column names must be strings (got {column!r}) — fix: quote "
                                 "the column name")
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


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _json_fast_ok(value: Any) -> bool:
    """True when ``value`` is plainly valid for jsonb (str keys, JSON values, no NUL); False means
    "check slowly" (:func:`_check_json` then names the problem), never "invalid" by itself."""
    kind = type(value)
    if kind is dict:
        if set(map(type, value)) - {str} or "\x00" in "".join(value):
            return False
        items = value.values()
    elif kind is list:
        items = value
    elif kind in _JSON_SCALARS:
        return kind is not str or "\x00" not in value
    else:
        return False
    kinds = set(map(type, items))
    if kinds <= _JSON_SCALARS:
        return str not in kinds or "\x00" not in "".join([v for v in items if type(v) is str])
    return all(map(_json_fast_ok, items))


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


def _advance_sequence(ctx: PlanContext, table: str, column: str) -> sql.Composable:
    """PL/pgSQL: when ``table.column`` owns a sequence, move it past the column's values (never back).

    With INCREMENT > 0 the next value must exceed max(column); with INCREMENT < 0 it must be below
    min(column). ``setval(seq, v, true)`` makes the next ``nextval`` return ``v + increment``; a value
    outside MINVALUE/MAXVALUE stops the forward with one clear error.
    """
    col = ident(column)
    where = f"{table}.{column}"
    return block(
        S("v_seq := pg_catalog.pg_get_serial_sequence({t}, {c});").format(
            t=literal(render(qualified(table))), c=literal(column)),
        if_then(
            S("v_seq IS NOT NULL"),
            S("SELECT s.seqincrement, s.seqmin, s.seqmax INTO v_inc, v_min, v_max FROM pg_catalog.pg_sequence s"
              " WHERE s.seqrelid = v_seq::pg_catalog.regclass;"),
            S("EXECUTE 'SELECT last_value, is_called FROM ' || v_seq INTO v_last, v_called;"),
            S("v_next := CASE WHEN v_called THEN v_last::numeric + v_inc ELSE v_last END;"),
            if_then(
                S("v_inc > 0"),
                S("SELECT pg_catalog.max({c})::numeric INTO v_top FROM {t};").format(c=col, t=qualified(table)),
                if_then(S("v_top IS NOT NULL AND v_top >= v_next"),
                        if_then(S("v_top > v_max"),
                                fail(ctx, f"seed values of {where} exceed its sequence's MAXVALUE:",
                                     "Use values within the sequence's range, or ALTER SEQUENCE ... MAXVALUE first.",
                                     detail=S("v_seq || ' max ' || v_max || ', largest value ' || v_top"))),
                        S("PERFORM pg_catalog.setval(v_seq, v_top::bigint, true);"),
                        S("RAISE NOTICE '%', {msg} || v_seq || ' moved to ' || v_top;").format(
                            msg=literal(f"dbdeploy {ctx.label}: explicit values in {where}: sequence "))),
                otherwise=[
                    S("SELECT pg_catalog.min({c})::numeric INTO v_top FROM {t};").format(c=col, t=qualified(table)),
                    if_then(S("v_top IS NOT NULL AND v_top <= v_next"),
                            if_then(S("v_top < v_min"),
                                    fail(ctx, f"seed values of {where} are below its descending sequence's "
                                              "MINVALUE:",
                                         "Use values within the sequence's range, or ALTER SEQUENCE ... MINVALUE "
                                         "first.",
                                         detail=S("v_seq || ' min ' || v_min || ', smallest value ' || v_top"))),
                            S("PERFORM pg_catalog.setval(v_seq, v_top::bigint, true);"),
                            S("RAISE NOTICE '%', {msg} || v_seq || ' moved to ' || v_top;").format(
                                msg=literal(f"dbdeploy {ctx.label}: explicit values in {where}: descending "
                                            "sequence ")))]),
        ),
    )


def _value(cell: Any):
    if isinstance(cell, dict | list):
        return literal(Jsonb(cell))
    return literal(cell)
