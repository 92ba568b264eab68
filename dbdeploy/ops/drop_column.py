"""DropColumn: drop a column online, keeping its definition and every value for the rollback.

Nobody waits behind this operation longer than ``lock_timeout`` except for the short metadata
changes (README, "Rollback" → DropColumn). The forward is three steps:

1. ``drop_column_prepare`` (one short transaction; CREATE TRIGGER takes SHARE ROW EXCLUSIVE):
   refuses what cannot be restored (views or other tables' foreign keys on the column, no primary
   key, the column in the primary key, an exclusion constraint on it) before any change; then
   creates, in the backup schema and owned by the deploying role,

   - a zero-row **definition keeper** ``…_def``: ``CREATE TABLE … (LIKE t INCLUDING DEFAULTS
     INCLUDING IDENTITY INCLUDING COMMENTS)`` (the column's type, typmod, collation, NOT NULL,
     default, identity and comment become PostgreSQL catalog entries of a dbdeploy-owned table;
     the other columns' defaults are dropped again so the keeper depends on no other sequence),
     plus the CHECK constraints and indexes that use the column, re-created on the keeper from
     PostgreSQL's deparse of the originals (unique constraints attached as constraints);
   - the values table ``…`` (key columns + the column, primary key on the key);
   - a trigger on the table (AFTER INSERT/UPDATE/DELETE, FOR EACH ROW) whose SECURITY DEFINER
     function (backup schema, ``search_path = pg_catalog, pg_temp``, EXECUTE revoked from PUBLIC,
     refuses to run for any other table) upserts the key and value into the values table and
     deletes on DELETE, so writes made during and after the copy are kept;
   - a cursor table ``…_progress`` and the batch function ``…_copy``.
2. ``copy_column`` (no transaction, ACCESS SHARE): copies the values in primary-key order, one batch
   of at most ``batch_size`` rows per transaction (as many as take about ``batch_time``:
   :mod:`dbdeploy.ops.batches`), taking no row lock (writers never wait for it), the cursor
   committing with the batch; a killed run resumes at the cursor. The copy inserts with ``ON
   CONFLICT DO NOTHING`` and the trigger upserts, so the newest value always wins: a value the
   trigger saved is never replaced by the batch's older read, and a batch row saved before a
   write is overwritten by that write's trigger (which waits for the batch's commit only when it
   hits a key of the batch in flight). A row deleted between the batch's read and its insert can
   leave a saved value for a key no longer in the table; the rollback counts those as deleted.
   The executor runs the batch statement between the batch markers.
3. ``drop_column`` (one short transaction, ACCESS EXCLUSIVE): records the serial sequence, the
   identity sequence's position and the foreign keys from the column (as data) in
   ``dropped_columns``, drops the trigger and the column.

The rollback never executes SQL text read from a table. Everything it restores comes from the
bundle (names, the spec-known indexes it rebuilds concurrently) or from PostgreSQL's catalog
entries of the dbdeploy-owned keeper (``format_type``, ``pg_get_expr``, ``pg_get_constraintdef``,
``pg_get_indexdef`` — PostgreSQL's deparse, not text anybody wrote into a table); values of
``dropped_columns`` (sequence names and position, foreign keys as JSON) are used only as data:
identifiers through ``quote_ident``, keywords chosen by ``CASE`` from fixed lists, numbers as
numbers. The rollback steps:

1. ``restore_column`` (short, ACCESS EXCLUSIVE): creates the restore cursor and batch function,
   then — last, so the table's lock is held only for catalog changes — re-adds the column nullable
   without a default (metadata only, no rewrite), its default (for rows inserted from now on) and
   comment.
2. ``restore_column_values`` (no transaction, ROW EXCLUSIVE, batches in key order, sized by time
   like the copy's): puts each
   saved value back where the column is still NULL — a value the application wrote to the
   re-added column meanwhile is never overwritten — and gives rows inserted while the column was
   gone the column default.
3. ``restore_column_constraints`` (short, ACCESS EXCLUSIVE / SHARE ROW EXCLUSIVE for foreign
   keys): ``CHECK (col IS NOT NULL) NOT VALID``, the CHECK constraints and foreign keys, all NOT
   VALID; a PostgreSQL 18 ``NOT NULL … NOT VALID`` on the column (kept unvalidated on the keeper,
   as LIKE would copy it validated) comes back as it was, without the check: NULL rows may remain.
4. ``validate_column_constraints`` (SHARE UPDATE EXCLUSIVE): VALIDATE those that were valid.
5. ``restore_column_not_null`` (short, ACCESS EXCLUSIVE): SET NOT NULL (no scan: the validated
   check proves it, PostgreSQL 12+), drops the helper check, identity and sequence ownership.
6. ``CREATE INDEX CONCURRENTLY`` for each non-unique index on the column that the specs know
   (SHARE UPDATE EXCLUSIVE: reads and writes continue), after ``drop_invalid_index``.
7. For each unique index and unique constraint on the column that the specs know (the spec history
   in the PlanContext: Index(unique=True), AddUnique, CreateTable's uniques): ``drop_invalid_index``,
   then ``create_unique_index`` — a DO block counts duplicate keys and refuses with their number
   (rows inserted while the column was gone got its default; the application may have written the
   re-added column since), the restored values stay — then ``CREATE UNIQUE INDEX CONCURRENTLY``
   (SHARE UPDATE EXCLUSIVE); for a constraint, ``add_unique`` (short, ACCESS EXCLUSIVE, catalog only)
   ``ADD CONSTRAINT … UNIQUE USING INDEX``.
8. ``restore_column_finish`` (ACCESS EXCLUSIVE): the keeper's indexes that are still missing — those
   the specs do not know, only known at run time (and CREATE INDEX CONCURRENTLY cannot run in a
   function or DO block) — built in the transaction; these block writes while they build, which the
   checklist says and the step's NOTICE names each one. Then their unique constraints attached, the
   keeper, values table and functions dropped, the ``dropped_columns`` row deleted, a NOTICE with
   the counts.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from psycopg import sql
from pydantic import Field

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import Identifier, TableName
from dbdeploy.model.components import Index
from dbdeploy.model.names import derived_name, spelled, split_table
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.batches import (
    batch_function_head,
    batch_loop,
    call_batch_function,
    cursor_table,
    drop_batch_function,
    noop_batch_function,
    revoke_batch_function,
)
from dbdeploy.ops.common import (
    NOT_NULL_PROVEN,
    S,
    attnum,
    backup_name,
    column_dependants,
    column_exists,
    fail,
    is_owned,
    notice,
    refuse_if_dependants,
    regclass,
    relation_exists,
    relation_missing,
)
from dbdeploy.ops.constraint_steps import (
    add_foreign_key_from_json,
    attach_unique,
    drop_invalid_index,
    duplicate_precheck,
)
from dbdeploy.ops.ddl import create_index, index_identifier
from dbdeploy.sql import acl, ident, literal, qualified, regclass_of, render
from dbdeploy.sql.blocks import block, do_block, if_then, indented

BATCH_SIZE = 1000


def dropped_columns_table(ctx: PlanContext):
    return ident(ctx.backup_schema, "dropped_columns")


def _keys(fmt: str, sep: str = ", ", var: sql.Composable = S("v_key")) -> sql.Composable:
    """PL/pgSQL expression: the key columns in ``var`` (text[]) each formatted with ``fmt`` (``%1$I``
    is the quoted column name), joined by ``sep`` — identifiers from the catalog, quoted as data."""
    return S("(SELECT pg_catalog.string_agg(pg_catalog.format({f}, u.k), {sep} ORDER BY u.o)"
             " FROM pg_catalog.unnest({var}) WITH ORDINALITY AS u(k, o))").format(
        f=literal(fmt), sep=literal(sep), var=var)


def _fmt(composable: sql.Composable) -> str:
    """Rendered SQL for a ``format()`` template (``%`` doubled)."""
    return render(composable).replace("%", "%%")


class DropColumn(Operation):
    kind: ClassVar[str] = "drop_column"
    destructive: ClassVar[bool] = True
    table: TableName
    column: Identifier
    batch_size: int = Field(default=BATCH_SIZE, ge=1, le=1_000_000)

    def apply(self, state: SchemaState) -> None:
        table = state.tables.get(self.table)
        if table is None:
            state.forget_column(self.table, self.column)   # its foreign keys and checks the specs added
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

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.Column(self.table, self.column, present=False)]

    # --- names (all from the bundle, never read from a table) -----------------------------

    def _backup(self, ctx: PlanContext) -> str:
        return backup_name(ctx, f"op{ctx.index}", split_table(self.table)[1], self.column)

    def _name(self, ctx: PlanContext, suffix: str) -> str:
        return derived_name(self._backup(ctx), suffix=suffix)

    def _rel(self, ctx: PlanContext, suffix: str | None = None) -> sql.Identifier:
        return ident(ctx.backup_schema, self._backup(ctx) if suffix is None else self._name(ctx, suffix))

    def _regclass(self, ctx: PlanContext, suffix: str | None = None) -> sql.Composable:
        return regclass(self._rel(ctx, suffix))

    def _fn(self, ctx: PlanContext, suffix: str) -> sql.Identifier:
        return ident(ctx.backup_schema, self._name(ctx, suffix))

    def _trigger(self, ctx: PlanContext) -> sql.Identifier:
        return ident(derived_name("dbdeploy", f"v{ctx.version}", f"op{ctx.index}", "sync", self.column))

    def _not_null_check(self, ctx: PlanContext) -> str:
        return derived_name(f"dbdeploy_v{ctx.version}", self.column, suffix="not_null")

    def _where(self, ctx: PlanContext):
        return S("version = {v} AND table_name = {t} AND column_name = {c}").format(
            v=literal(ctx.version), t=literal(self.table), c=literal(self.column))

    def _spec_indexes(self, ctx: PlanContext) -> list:
        """Non-unique indexes on the column that the specs know: rebuilt concurrently by the rollback."""
        return [index for owner, index in ctx.state.indexes.values()
                if owner == self.table and self.column in index.referenced_columns and not index.unique]

    def _spec_uniques(self, ctx: PlanContext) -> list[tuple[Index, str | None]]:
        """Unique indexes and unique constraints on the column that the specs know, as
        ``(index, constraint name or None)``: rebuilt concurrently by the rollback (a constraint's
        index has the constraint's name, as AddUnique and CreateTable build it)."""
        found: list[tuple[Index, str | None]] = [
            (index, None) for owner, index in ctx.state.indexes.values()
            if owner == self.table and self.column in index.referenced_columns and index.unique]
        known = ctx.state.tables.get(self.table)
        for name, columns in (known.uniques.items() if known is not None else ()):
            if self.column in columns:
                found.append((Index(columns=[spelled(c) for c in columns], unique=True, name=spelled(name),
                                    nulls_not_distinct=name in known.nulls_not_distinct), name))
        return found

    def _unique_build_step(self, ctx: PlanContext, index: Index) -> Step:
        """``CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS`` (SHARE UPDATE EXCLUSIVE, outside a
        transaction), after a DO block that counts duplicate keys first and refuses with their number
        (:func:`~dbdeploy.ops.constraint_steps.duplicate_precheck`): rows inserted while the column was
        gone got its default, and the application may have written the re-added column since."""
        qualified_index = render(index_identifier(self.table, index))
        hint = (f"The restored column {self.table}.{self.column} keeps every value; the rows as they are now "
                f"break index {qualified_index}. Change or delete the rows with duplicated keys (rows inserted while "
                "the column was gone got its default), then run the rollback again: it continues at this step.")
        check = do_block(duplicate_precheck(ctx, self.table, index, qualified_index, hint=hint),
                         declare=["v_duplicated bigint"])
        return Step("create_unique_index", self.table, "SHARE UPDATE EXCLUSIVE", False,
                    check + "\n" + render(create_index(self.table, index, concurrently=True)) + ";",
                    f"rebuild unique index {index.resolved_name(self.table)} on {self.table} concurrently "
                    "(refused if the keys are duplicated)")

    # --- forward ------------------------------------------------------------------------------

    def _key_from_primary_key(self) -> sql.Composable:
        return S("SELECT pg_catalog.array_agg(a.attname::text ORDER BY k.ord) INTO v_key\n"
                 "FROM pg_catalog.pg_index i\n"
                 "CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)\n"
                 "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum\n"
                 "WHERE i.indrelid = {rel} AND i.indisprimary;").format(rel=regclass(self.table))

    def _sync_function(self, ctx: PlanContext) -> sql.Composable:
        """CREATE FUNCTION of the trigger function (built at run time from the key columns)."""
        t, col, b = qualified(self.table), ident(self.column), self._rel(ctx)
        body = (
            "BEGIN\n"
            f"    IF TG_RELID IS DISTINCT FROM {_fmt(regclass(t))} THEN\n"
            "        RAISE EXCEPTION 'dbdeploy: this trigger function serves only %%', "
            f"{_fmt(literal(self.table))};\n"
            "    END IF;\n"
            "    IF TG_OP = 'DELETE' THEN\n"
            f"        DELETE FROM {_fmt(b)} AS b WHERE %1$s;\n"
            "        RETURN NULL;\n"
            "    END IF;\n"
            "    IF TG_OP = 'UPDATE' THEN\n"
            "        IF %4$s THEN\n"
            f"            DELETE FROM {_fmt(b)} AS b WHERE %1$s;\n"
            "        END IF;\n"
            "    END IF;\n"
            f"    INSERT INTO {_fmt(b)} (%2$s, {_fmt(col)}) VALUES (%3$s, NEW.{_fmt(col)})\n"
            f"        ON CONFLICT (%2$s) DO UPDATE SET {_fmt(col)} = EXCLUDED.{_fmt(col)};\n"
            "    RETURN NULL;\n"
            "END")
        head = (f"CREATE FUNCTION {_fmt(self._fn(ctx, 'sync'))}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER"
                " SET search_path = pg_catalog, pg_temp AS %L")
        return S("EXECUTE pg_catalog.format({head},"
                 " pg_catalog.format({body}, {old}, {cols}, {new}, {changed}));").format(
            head=literal(head), body=literal(body), old=_keys("b.%1$I = OLD.%1$I", " AND "), cols=_keys("%1$I"),
            new=_keys("NEW.%1$I"), changed=_keys("OLD.%1$I IS DISTINCT FROM NEW.%1$I", " OR "))

    def _copy_function(self, ctx: PlanContext) -> sql.Composable:
        """CREATE FUNCTION of the copy's batch function ``…_copy(p_rows bigint)`` (built at run time
        from the key columns): the next ``p_rows`` rows from the cursor, their values inserted into
        the values table unless the trigger saved a newer one, the cursor moved with the batch."""
        t, col, b, p = qualified(self.table), ident(self.column), self._rel(ctx), self._rel(ctx, "progress")
        n = "$1"
        body = (
            "DECLARE\n    v_seen bigint;\n    v_copied bigint;\n"
            "BEGIN\n"
            f"    IF NOT EXISTS (SELECT 1 FROM {_fmt(p)} AS p WHERE (%5$s) IS NOT NULL) THEN\n"
            "        rows_seen := 0;\n        rows_copied := 0;\n        RETURN NEXT;\n        RETURN;\n"
            "    END IF;\n"
            "    WITH batch AS (\n"
            f"        SELECT %1$s, t.{_fmt(col)} AS dbdeploy_value FROM {_fmt(t)} AS t\n"
            "        WHERE (%1$s) >= (%2$s) ORDER BY %1$s LIMIT " + n + "\n"
            "    ), next_key AS (\n"
            f"        SELECT %1$s FROM {_fmt(t)} AS t\n"
            "        WHERE (%1$s) >= (%2$s) ORDER BY %1$s OFFSET " + n + " LIMIT 1\n"
            "    ), saved AS (\n"
            f"        INSERT INTO {_fmt(b)} (%3$s, {_fmt(col)}) SELECT %3$s, dbdeploy_value FROM batch\n"
            "        ON CONFLICT (%3$s) DO NOTHING RETURNING 1\n"
            "    ), moved AS (\n"
            f"        UPDATE {_fmt(p)} SET (%3$s) = (SELECT %4$s FROM next_key),\n"
            "            dbdeploy_rows_done = dbdeploy_rows_done + (SELECT count(*) FROM saved),\n"
            "            dbdeploy_batches_done = dbdeploy_batches_done + 1\n"
            "        WHERE EXISTS (SELECT 1 FROM batch)\n"
            "    )\n"
            "    SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM saved) INTO v_seen, v_copied;\n"
            "    rows_seen := v_seen;\n    rows_copied := v_copied;\n    RETURN NEXT;\n"
            "END")
        head = _fmt(batch_function_head(self._fn(ctx, "copy"), "rows_copied", "plpgsql")) + "%L"
        return S("EXECUTE pg_catalog.format({head}, pg_catalog.format({body}, {tk}, {cur}, {k}, {nk}, {pk}));").format(
            head=literal(head), body=literal(body), tk=_keys("t.%1$I"),
            cur=_keys(f"(SELECT p.%1$I FROM {_fmt(p)} AS p)"), k=_keys("%1$I"), nk=_keys("next_key.%1$I"),
            pk=_keys("p.%1$I"))

    def _noop_function(self, ctx: PlanContext, suffix: str, out: str) -> sql.Composable:
        """A batch function that reports nothing to do, so the batch step of a drop (or restore) that
        has nothing to do runs (psql and the executor call the function by its bundle name)."""
        return noop_batch_function(self._fn(ctx, suffix), out)

    def _prepare_step(self, ctx: PlanContext) -> Step:
        rel = regclass(self.table)
        meta = dropped_columns_table(ctx)
        col = literal(self.column)
        t, keeper = qualified(self.table), self._rel(ctx, "def")
        keeper_text = literal(render(keeper))
        num = attnum(self.table, self.column)
        on_column = S("(SELECT d.objid FROM pg_catalog.pg_depend d"
                      " WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = {rel}"
                      " AND d.refobjsubid = {num})").format(rel=rel, num=num)
        body = block(
            if_then(S("{} OR NOT {}").format(relation_missing(self.table), column_exists(self.table, self.column)),
                    notice(ctx, f"column {self.table}.{self.column} is already gone"),
                    self._noop_function(ctx, "copy", "rows_copied"), S("RETURN;")),
            if_then(S("{} IS NOT NULL").format(self._regclass(ctx, "progress")),
                    notice(ctx, f"the drop of {self.table}.{self.column} was prepared by an earlier run; "
                                "continuing with the copy"), S("RETURN;")),
            refuse_if_dependants(ctx, f"column {self.table}.{self.column}",
                                 column_dependants(self.table, self.column)),
            self._key_from_primary_key(),
            if_then(S("v_key IS NULL"),
                    fail(ctx, f"cannot drop {self.table}.{self.column} restorably: the table has no "
                              "primary key to restore values by",
                         "Add a primary key to the table first, or drop the column with RawSQL.")),
            if_then(S("{} = ANY (v_key)").format(col),
                    fail(ctx, f"cannot drop {self.table}.{self.column}: it is part of the primary key",
                         "Drop the table instead, or change the key with RawSQL.")),
            S("SELECT pg_catalog.string_agg(c.conname, ', ') INTO v_dependants FROM pg_catalog.pg_constraint c\n"
              "WHERE c.conrelid = {rel} AND c.contype = 'x' AND {num} = ANY (c.conkey);").format(rel=rel, num=num),
            if_then(S("v_dependants IS NOT NULL"),
                    fail(ctx, f"cannot drop {self.table}.{self.column} restorably: the rollback cannot rebuild "
                              "these exclusion constraints on it:",
                         "Drop the exclusion constraint first (RawSQL, with its own rollback), then re-run.",
                         detail=S("v_dependants"))),
            S("CREATE TABLE IF NOT EXISTS {meta} (\n"
              "    version text NOT NULL, table_name text NOT NULL, column_name text NOT NULL,\n"
              "    column_type text NOT NULL, not_null boolean NOT NULL, default_expr text,\n"
              "    key_columns text[] NOT NULL, restore_ddl text[], backup_table text NOT NULL,\n"
              "    identity_kind text, column_comment text, collation_name text,\n"
              "    sequence_schema text, sequence_name text, sequence_value bigint, saved_sequence text,\n"
              "    dropped_at timestamptz NOT NULL DEFAULT pg_catalog.now(),\n"
              "    PRIMARY KEY (version, table_name, column_name)\n"
              ");").format(meta=meta),
            S("ALTER TABLE {meta} ADD COLUMN IF NOT EXISTS foreign_keys jsonb;").format(meta=meta),
            acl.restrict_table(meta),
            if_then(S("EXISTS (SELECT 1 FROM {meta} WHERE {w})").format(meta=meta, w=self._where(ctx)),
                    fail(ctx, f"an earlier drop of {self.table}.{self.column} by {ctx.label} was never "
                              f"rolled back; its saved values are still in {ctx.backup_schema}.{self._backup(ctx)}",
                         f"Inspect {ctx.backup_schema}.{self._backup(ctx)}; once it is not needed, drop it (and "
                         f"{ctx.backup_schema}.{self._name(ctx, 'def')}) and delete its row from "
                         f"{ctx.backup_schema}.dropped_columns, then re-run.")),
            # The definition keeper: the column's definition as catalog entries of a dbdeploy-owned table.
            S("CREATE TABLE {k} (LIKE {t} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING COMMENTS);").format(
                k=keeper, t=t),
            acl.restrict_table(keeper),
            # PostgreSQL 18: LIKE copies a NOT NULL … NOT VALID as a valid NOT NULL; the keeper keeps it
            # unvalidated, as on the table (NULL rows may exist), so the rollback restores it NOT VALID.
            S("FOR v_con IN SELECT c.conname::text AS name FROM pg_catalog.pg_constraint c\n"
              "    WHERE c.conrelid = {rel} AND c.contype = 'n' AND c.conkey[1] = {num} AND NOT c.convalidated LOOP\n"
              "    EXECUTE 'ALTER TABLE ' || {kt} || ' ALTER COLUMN ' || {qc} || ' DROP NOT NULL';\n"
              "    EXECUTE 'ALTER TABLE ' || {kt} || ' ADD CONSTRAINT ' || pg_catalog.quote_ident(v_con.name)"
              " || ' NOT NULL ' || {qc} || ' NOT VALID';\n"
              "END LOOP;").format(rel=rel, num=num, kt=keeper_text, qc=literal(render(ident(self.column)))),
            S("FOR v_name IN SELECT a.attname::text FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_attrdef d\n"
              "    ON d.adrelid = a.attrelid AND d.adnum = a.attnum\n"
              "    WHERE a.attrelid = {kr}::pg_catalog.regclass AND a.attname <> {col} LOOP\n"
              "    EXECUTE 'ALTER TABLE ' || {kt} || ' ALTER COLUMN ' || pg_catalog.quote_ident(v_name)"
              " || ' DROP DEFAULT';\n"
              "END LOOP;").format(kr=keeper_text, col=col, kt=keeper_text),
            S("FOR v_con IN SELECT c.oid, c.conname::text AS name FROM pg_catalog.pg_constraint c\n"
              "    WHERE c.conrelid = {rel} AND c.contype = 'c' AND {num} = ANY (c.conkey) ORDER BY c.conname LOOP\n"
              "    EXECUTE 'ALTER TABLE ' || {kt} || ' ADD CONSTRAINT ' || pg_catalog.quote_ident(v_con.name) || ' '\n"
              "        || pg_catalog.pg_get_constraintdef(v_con.oid);\n"
              "END LOOP;").format(rel=rel, num=num, kt=keeper_text),
            # Indexes on the column (keys, expressions, predicates): the same definition on the keeper,
            # under the same name (PostgreSQL's deparse with the table replaced by the keeper).
            S("FOR v_con IN SELECT i.indexrelid AS oid, c.relname::text AS name, i.indisunique,\n"
              "        con.conname::text AS conname, con.condeferrable, con.condeferred\n"
              "    FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid\n"
              "    LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid\n"
              "        AND con.conrelid = i.indrelid\n"
              "        AND con.contype = 'u'\n"
              "    WHERE i.indrelid = {rel} AND (i.indexrelid IN {on_column} OR {num} = ANY (i.indkey))\n"
              "    ORDER BY c.relname LOOP\n"
              "    v_def := pg_catalog.pg_get_indexdef(v_con.oid);\n"
              "    v_head := 'CREATE ' || CASE WHEN v_con.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '\n"
              "        || pg_catalog.quote_ident(v_con.name) || ' ON ' || {rel}::text || ' USING ';\n"
              "    IF pg_catalog.left(v_def, pg_catalog.length(v_head)) IS DISTINCT FROM v_head THEN\n"
              "        RAISE EXCEPTION '%', {msg} || v_con.name USING HINT = {hint};\n"
              "    END IF;\n"
              "    EXECUTE 'CREATE ' || CASE WHEN v_con.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '\n"
              "        || pg_catalog.quote_ident(v_con.name) || ' ON ' || {kt} || ' USING '\n"
              "        || pg_catalog.substr(v_def, pg_catalog.length(v_head) + 1);\n"
              "    IF v_con.conname IS NOT NULL THEN\n"
              "        EXECUTE 'ALTER TABLE ' || {kt} || ' ADD CONSTRAINT ' || pg_catalog.quote_ident(v_con.conname)\n"
              "            || ' UNIQUE USING INDEX ' || pg_catalog.quote_ident(v_con.name)\n"
              "            || CASE WHEN v_con.condeferrable THEN ' DEFERRABLE' ELSE '' END\n"
              "            || CASE WHEN v_con.condeferred THEN ' INITIALLY DEFERRED' ELSE '' END;\n"
              "    END IF;\n"
              "END LOOP;").format(
                rel=rel, on_column=on_column, kt=keeper_text, num=num,
                msg=literal(f"dbdeploy {ctx.label}: cannot drop {self.table}.{self.column} restorably: cannot read "
                            "the definition of index "),
                hint=literal("Drop that index first (DropIndex or RawSQL), then re-run.")),
            # The values table, the trigger that keeps it in sync, the cursor and the batch function.
            S("EXECUTE 'CREATE TABLE ' || {b} || ' AS SELECT ' || {k} || ', ' || {c} || ' FROM ' || {t}"
              " || ' WITH NO DATA';").format(b=literal(render(self._rel(ctx))), k=_keys("%1$I"),
                                            c=literal(render(ident(self.column))), t=literal(render(t))),
            S("EXECUTE 'ALTER TABLE ' || {b} || ' ADD PRIMARY KEY (' || {k} || ')';").format(
                b=literal(render(self._rel(ctx))), k=_keys("%1$I")),
            acl.restrict_table(self._rel(ctx)),
            self._sync_function(ctx),
            S("REVOKE ALL ON FUNCTION {}() FROM PUBLIC;").format(self._fn(ctx, "sync")),
            S("CREATE TRIGGER {trg} AFTER INSERT OR UPDATE OR DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION {fn}();"
              ).format(trg=self._trigger(ctx), t=t, fn=self._fn(ctx, "sync")),
            *cursor_table(self._rel(ctx, "progress"), ["dbdeploy_rows_done", "dbdeploy_batches_done"], create=S(
                "EXECUTE 'CREATE TABLE ' || {p} || ' AS SELECT ' || {k} || ' FROM ' || {t} || ' ORDER BY ' || {k}"
                " || ' LIMIT 1';").format(p=literal(render(self._rel(ctx, "progress"))), k=_keys("%1$I"),
                                          t=literal(render(t)))),
            self._copy_function(ctx),
            revoke_batch_function(self._fn(ctx, "copy")),
            notice(ctx, f"prepared the drop of {self.table}.{self.column}: its definition is kept in "
                        f"{ctx.backup_schema}.{self._name(ctx, 'def')}, its values are being copied to "
                        f"{ctx.backup_schema}.{self._backup(ctx)} (a trigger keeps the copy in sync)"),
        )
        declare = ["v_dependants text", "v_key text[]", "v_name text", "v_con record", "v_def text", "v_head text"]
        return Step("drop_column_prepare", self.table, "SHARE ROW EXCLUSIVE", True, do_block(body, declare=declare),
                    f"prepare the drop of column {self.column} of {self.table}: keep its definition, "
                    "sync its values by trigger")

    def _batch_step(self, kind: str, fn: sql.Identifier, out: str, lock: str, summary: str) -> Step:
        """A batch step (no transaction) calling ``fn`` once per batch in the shared batch loop
        (:func:`dbdeploy.ops.batches.batch_loop`): at most ``batch_size`` rows per batch, sized by time."""
        return Step(kind, self.table, lock, False, batch_loop(call_batch_function(fn, out), self.batch_size), summary)

    def _drop_step(self, ctx: PlanContext) -> Step:
        rel = regclass(self.table)
        meta = dropped_columns_table(ctx)
        col = literal(self.column)
        qt = literal(render(qualified(self.table)))
        backup = self._backup(ctx)
        num = attnum(self.table, self.column)
        seq_name = literal(f"{backup}_seq"[:63])
        body = block(
            if_then(S("{} OR NOT {}").format(relation_missing(self.table), column_exists(self.table, self.column)),
                    notice(ctx, f"column {self.table}.{self.column} is already gone"), S("RETURN;")),
            if_then(S("{} IS NULL").format(self._regclass(ctx, "progress")),
                    fail(ctx, f"the drop of {self.table}.{self.column} was not prepared",
                         "Run the whole forward bundle (its earlier steps prepare the drop).")),
            S("SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum) INTO v_key\n"
              "FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a\n"
              "    ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)\n"
              "WHERE i.indrelid = {b} AND i.indisprimary;").format(b=self._regclass(ctx)),
            S("EXECUTE 'SELECT count(*) FROM ' || {p} || ' AS p WHERE (' || {pk} || ') IS NOT NULL' INTO v_count;"
              ).format(p=literal(render(self._rel(ctx, "progress"))), pk=_keys("p.%1$I")),
            if_then(S("v_count > 0"),
                    fail(ctx, f"the copy of {self.table}.{self.column} is not finished",
                         "Re-run the forward bundle: the copy continues at its cursor.")),
            S("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE;").format(qualified(self.table)),
            # not_null: proven free of NULLs (not a NOT NULL … NOT VALID of PostgreSQL 18)
            S("SELECT pg_catalog.format_type(a.atttypid, a.atttypmod), {proven}, a.attidentity,\n"
              "       CASE WHEN a.attidentity = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END\n"
              "INTO v_type, v_not_null, v_identity, v_default\n"
              "FROM pg_catalog.pg_attribute a\n"
              "LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum\n"
              "WHERE a.attrelid = {rel} AND a.attname = {col};").format(rel=rel, col=col, proven=NOT_NULL_PROVEN),
            S("v_sequence := pg_catalog.pg_get_serial_sequence({qt}, {col});").format(qt=qt, col=col),
            if_then(S("v_sequence IS NOT NULL"),
                    S("v_sequence_value := pg_catalog.pg_sequence_last_value(v_sequence::pg_catalog.regclass);")),
            # Foreign keys from the column, as data (names and keywords), rebuilt by the rollback.
            S("SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(\n"
              "    'name', c.conname::text,\n"
              "    'columns', (SELECT pg_catalog.jsonb_agg(a.attname::text ORDER BY k.o)"
              " FROM pg_catalog.unnest(c.conkey)"
              " WITH ORDINALITY AS k(n, o)"
              " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n),\n"
              "    'ref_schema', rn.nspname::text, 'ref_table', r.relname::text,\n"
              "    'ref_columns', (SELECT pg_catalog.jsonb_agg(a.attname::text ORDER BY k.o)"
              " FROM pg_catalog.unnest(c.confkey)"
              " WITH ORDINALITY AS k(n, o)"
              " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n),\n"
              "    'match', c.confmatchtype::text, 'on_update', c.confupdtype::text,"
              " 'on_delete', c.confdeltype::text,\n"
              "    'deferrable', c.condeferrable, 'deferred', c.condeferred, 'validated', c.convalidated)\n"
              "    ORDER BY c.conname) INTO v_fks\n"
              "FROM pg_catalog.pg_constraint c\n"
              "JOIN pg_catalog.pg_class r ON r.oid = c.confrelid\n"
              "JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace\n"
              "WHERE c.conrelid = {rel} AND c.contype = 'f' AND {num} = ANY (c.conkey);").format(rel=rel, num=num),
            # A serial column's sequence is dropped with the column: detach it and keep it aside.
            if_then(S("v_sequence IS NOT NULL AND v_identity = ''"),
                    S("SELECT n.nspname, c.relname INTO v_sequence_schema, v_sequence_name\n"
                      "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n"
                      "WHERE c.oid = v_sequence::pg_catalog.regclass;"),
                    S("EXECUTE 'ALTER SEQUENCE ' || v_sequence || ' OWNED BY NONE';"),
                    S("EXECUTE 'ALTER SEQUENCE ' || v_sequence || ' RENAME TO ' || pg_catalog.quote_ident({n});"
                      ).format(n=seq_name),
                    S("EXECUTE 'ALTER SEQUENCE ' || pg_catalog.quote_ident(v_sequence_schema) || '.'"
                      " || pg_catalog.quote_ident({n}) || ' SET SCHEMA ' || pg_catalog.quote_ident({s});").format(
                        n=seq_name, s=literal(ctx.backup_schema)),
                    acl.set_aside(ctx.backup_schema, regclass(f"{ctx.backup_schema}.{f'{backup}_seq'[:63]}"),
                                  seq_name),
                    S("v_saved_sequence := {};").format(seq_name)),
            # For the operator's eyes (type, default): the rollback reads none of these texts.
            S("INSERT INTO {meta} (version, table_name, column_name, column_type, not_null, default_expr,"
              " key_columns, backup_table, identity_kind, sequence_schema, sequence_name, sequence_value,"
              " saved_sequence, foreign_keys)\n"
              "VALUES ({v}, {t}, {c}, v_type, v_not_null, v_default, v_key, {b}, v_identity, v_sequence_schema,"
              " v_sequence_name, v_sequence_value, v_saved_sequence, v_fks);").format(
                meta=meta, v=literal(ctx.version), t=literal(self.table), c=col, b=literal(backup)),
            S("DROP TRIGGER IF EXISTS {trg} ON {t};").format(trg=self._trigger(ctx), t=qualified(self.table)),
            S("ALTER TABLE {t} DROP COLUMN {c};").format(t=qualified(self.table), c=ident(self.column)),
            S("DROP FUNCTION IF EXISTS {}();").format(self._fn(ctx, "sync")),
            notice(ctx, f"dropped {self.table}.{self.column}; its values are kept in "
                        f"{ctx.backup_schema}.{backup} for rollback"),
        )
        declare = ["v_key text[]", "v_count bigint", "v_type text", "v_not_null boolean", "v_default text",
                   "v_identity text", "v_sequence text", "v_sequence_value bigint", "v_saved_sequence text",
                   "v_sequence_schema text", "v_sequence_name text", "v_fks jsonb"]
        return Step(self.kind, self.table, "ACCESS EXCLUSIVE", True, do_block(body, declare=declare),
                    f"drop column {self.column} of {self.table} (definition and values kept for rollback)")

    def forward(self, ctx: PlanContext) -> list[Step]:
        return scaled([
            self._prepare_step(ctx),
            self._batch_step("copy_column", self._fn(ctx, "copy"), "rows_copied", "ACCESS SHARE",
                             f"copy the values of {self.table}.{self.column} to the backup schema in batches of "
                             f"{self.batch_size} rows at most, each sized to take about batch_time"),
            self._drop_step(ctx),
        ], "constant (creates the keeper, backup table and trigger)",
            f"proportional to rows, in batches of at most {self.batch_size} (one transaction per batch, each about "
            "batch_time)", "constant (drops the trigger and the column)")

    # --- checklist ----------------------------------------------------------------------------

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        table, column = self.table, self.column
        backup = f"{ctx.backup_schema}.{self._backup(ctx)}"
        keeper = f"{ctx.backup_schema}.{self._name(ctx, 'def')}"
        saved = CheckQuery(
            f"The definition and every value of {table}.{column} are saved for the rollback ({backup}, {keeper})",
            queries.query(S("SELECT EXISTS (SELECT 1 FROM {meta} WHERE {w})\n    AND {copy} IS NOT NULL"
                           " AND {keeper} IS NOT NULL AS saved").format(
                meta=dropped_columns_table(ctx), w=self._where(ctx), copy=self._regclass(ctx),
                keeper=self._regclass(ctx, "def"))),
            "true")
        concurrent = [i.resolved_name(table) for i in self._spec_indexes(ctx)]
        uniques = [(i.resolved_name(table), c) for i, c in self._spec_uniques(ctx)]
        unique_note = ""
        if uniques:
            named = ", ".join(f"unique constraint {n}" if c else f"unique index {n}" for n, c in uniques)
            unique_note = (f", rebuilds {named} with CREATE UNIQUE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: "
                           "reads and writes continue) after counting duplicate keys (rows inserted while the column "
                           "was gone got its default; the application may write the re-added column): duplicated "
                           "keys make it stop before the build with their number, every restored value kept, and "
                           "it continues once they are fixed"
                           + ("; then attaches the constraint to its index (ADD CONSTRAINT … UNIQUE USING INDEX, a "
                              "short ACCESS EXCLUSIVE step)" if any(c for _, c in uniques) else ""))
        return ChecklistItems(
            backups=[table],
            prerequisites=[
                queries.table_exists(table),
                queries.dependants(table, column, f"Nothing outside the table uses {table}.{column}: no view, no other "
                                                 "table's foreign key (the drop refuses otherwise)"),
                queries.has_primary_key(table),
                queries.relation_missing_check(backup, f"No copy left by an earlier drop of {table}.{column} by "
                                                      f"{ctx.label} that was never rolled back ({backup})"),
            ],
            notes=[f"Dropping {table}.{column} is online: a short transaction creates {keeper} (the column's "
                   f"definition), {backup} and a trigger on {table} that keeps {backup} in sync with every write; "
                   f"the values are copied in batches of at most {self.batch_size} rows, each sized to take about "
                   "batch_time (one transaction each, no row lock; a "
                   "killed "
                   "run continues at its cursor); then one short ACCESS EXCLUSIVE transaction drops the trigger and "
                   "the column. The application may keep writing throughout. The drop refuses, before any change, "
                   "on a view or another table's foreign key using the column, no primary key, or an exclusion "
                   "constraint on the column."],
            health_checks=[queries.column_gone(table, column), saved],
            rollback_notes=[f"The rollback re-adds {table}.{column} (at the end of the table, nullable, no rewrite) "
                            f"with its type, collation, default and comment read from {keeper}'s catalog entries, "
                            f"puts every saved value back from {backup} in batches of at most {self.batch_size} rows "
                            "(each sized to take about batch_time) "
                            "(only where the "
                            "column is still NULL: a value the application writes to the re-added column meanwhile is "
                            "kept; rows inserted since the drop get the column default), then restores NOT NULL "
                            "through a validated CHECK, the CHECK constraints and foreign keys (NOT VALID, then "
                            "VALIDATE), identity and serial sequence"
                            + (f", rebuilds {', '.join(concurrent)} with CREATE INDEX CONCURRENTLY" if concurrent
                               else "")
                            + unique_note
                            + f". Indexes on {column} that the specs do not know (created by hand or by RawSQL) are "
                            "only known when the rollback runs, from the keeper, and CREATE INDEX CONCURRENTLY cannot "
                            "run in a function or DO block: they are built inside the last, ACCESS EXCLUSIVE "
                            "transaction (writes to the table wait while they build; its NOTICE names each one). "
                            "It refuses, "
                            "changing nothing, when a column of that name was added again after the drop or when the "
                            "column is NOT NULL without a default and rows were inserted since. Nothing it runs is "
                            f"SQL text read from a table ({ctx.backup_schema}.dropped_columns is read as data only)."])

    # --- rollback -----------------------------------------------------------------------------

    def _restoring(self, ctx: PlanContext) -> sql.Composable:
        """True while this rollback's own restore is under way (it re-added the column)."""
        return S("{} IS NOT NULL").format(self._regclass(ctx, "restore"))

    def _unfinished_forward(self, ctx: PlanContext) -> sql.Composable:
        """True when the forward prepared the drop but never dropped the column."""
        return S("{} IS NOT NULL AND {}").format(self._regclass(ctx, "progress"),
                                                  column_exists(self.table, self.column))

    def _refusals(self, ctx: PlanContext) -> list[sql.Composable]:
        """The conditions on which the restore refuses (read-only; also the rollback's preflight)."""
        meta = dropped_columns_table(ctx)
        key = f"{self.table}.{self.column}"
        backup = f"{ctx.backup_schema}.{self._backup(ctx)}"
        return [
            if_then(relation_missing(self.table),
                    fail(ctx, f"cannot restore {key}: the table does not exist",
                         "Restore the table first (roll back later migrations), then re-run.")),
            S("v_count := 0;"),
            if_then(relation_exists(f"{ctx.backup_schema}.dropped_columns"),
                    S("SELECT count(*) INTO v_count FROM {meta} WHERE {w};").format(meta=meta, w=self._where(ctx))),
            if_then(S("{} AND v_count > 0 AND NOT {} AND NOT {}").format(
                        column_exists(self.table, self.column), is_owned(ctx, "column", key), self._restoring(ctx)),
                    fail(ctx, f"cannot restore {key}: a column of that name was added again after {ctx.label} "
                              f"dropped it; its values before the drop are kept in {backup}",
                         f"Save what the re-added {key} holds and drop or rename it, then re-run the rollback; or, "
                         f"to keep the re-added column, drop {backup} and delete its row from "
                         f"{ctx.backup_schema}.dropped_columns.")),
            if_then(S("NOT {} AND v_count = 0").format(column_exists(self.table, self.column)),
                    fail(ctx, f"no saved copy of {key}; cannot restore it",
                         "The column was dropped outside this migration; restore it by hand.")),
            if_then(S("NOT {} AND ({} IS NULL OR {} IS NULL)").format(
                        column_exists(self.table, self.column), self._regclass(ctx), self._regclass(ctx, "def")),
                    fail(ctx, f"the saved values or definition of {key} are missing from {ctx.backup_schema}; "
                              "cannot restore them",
                         "Restore the backup tables from a database backup, or restore the column by hand.")),
            if_then(S("NOT {}").format(column_exists(self.table, self.column)), self._unsaved_rows_refusal(ctx)),
        ]

    def _unsaved_rows_refusal(self, ctx: PlanContext) -> sql.Composable:
        """Refuse when the keeper says NOT NULL without a default (or identity) and rows were inserted
        since the drop (no saved value): SET NOT NULL would fail after the column was re-added."""
        keeper = self._regclass(ctx, "def")
        col = literal(self.column)
        strict = S("EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = {k} AND a.attname = {c}"
                   " AND {proven} AND (a.attidentity <> '' OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attrdef d"
                   " WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum)))").format(
            k=keeper, c=col, proven=NOT_NULL_PROVEN)
        key = S("(SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum) FROM pg_catalog.pg_index i"
                " JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
                " WHERE i.indrelid = {b} AND i.indisprimary)").format(b=self._regclass(ctx))
        return if_then(S("{} IS NOT NULL AND {} IS NOT NULL AND {}").format(self._regclass(ctx), keeper, strict),
                       S("EXECUTE 'SELECT count(*) FROM ' || {qt} || ' AS t WHERE NOT EXISTS (SELECT 1 FROM ' || {b}\n"
                         "    || ' AS b WHERE ' || {km} || ')' INTO v_count;").format(
                           qt=literal(render(qualified(self.table))), b=literal(render(self._rel(ctx))),
                           km=_keys("t.%1$I = b.%1$I", " AND ", var=key)),
                       if_then(S("v_count > 0"),
                               fail(ctx, f"cannot restore NOT NULL column {self.table}.{self.column} without a "
                                         "default: rows inserted since the drop have no saved value; rows:",
                                    f"Delete those rows or restore {self.column} by hand, then re-run the rollback.",
                                    detail=S("v_count"))))

    def _key_from_backup(self, ctx: PlanContext) -> sql.Composable:
        """``v_key``: the key columns, from the values table's primary key (a dbdeploy-owned catalog entry)."""
        return S("SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum) INTO v_key\n"
                 "FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a\n"
                 "    ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)\n"
                 "WHERE i.indrelid = {b} AND i.indisprimary;").format(b=self._regclass(ctx))

    def _keeper_attr(self, ctx: PlanContext) -> sql.Composable:
        return S("(SELECT a.attnum FROM pg_catalog.pg_attribute a WHERE a.attrelid = {k} AND a.attname = {c})").format(
            k=self._regclass(ctx, "def"), c=literal(self.column))

    def _cleanup(self, ctx: PlanContext) -> list[sql.Composable]:
        return [
            if_then(relation_exists(self.table),
                    S("DROP TRIGGER IF EXISTS {trg} ON {t};").format(trg=self._trigger(ctx), t=qualified(self.table))),
            S("DROP FUNCTION IF EXISTS {}();").format(self._fn(ctx, "sync")),
            *(drop_batch_function(self._fn(ctx, s)) for s in ("copy", "put")),
            *(S("DROP TABLE IF EXISTS {};").format(self._rel(ctx, s)) for s in ("progress", "restore", "def")),
            S("DROP TABLE IF EXISTS {};").format(self._rel(ctx)),
        ]

    def _restore_function(self, ctx: PlanContext) -> sql.Composable:
        """CREATE FUNCTION of the restore's batch function ``…_put(p_rows bigint)`` (built at run time
        from the key columns): the next ``p_rows`` rows of the table from the cursor get their saved
        value where the column is still NULL, rows without one the column default."""
        t, col, b, p = qualified(self.table), ident(self.column), self._rel(ctx), self._rel(ctx, "restore")
        n = "$1"
        body = (
            "DECLARE\n    v_seen bigint;\n    v_put bigint;\n"
            "BEGIN\n"
            f"    IF NOT EXISTS (SELECT 1 FROM {_fmt(p)} AS p WHERE (%5$s) IS NOT NULL) THEN\n"
            "        rows_seen := 0;\n        rows_restored := 0;\n        RETURN NEXT;\n        RETURN;\n"
            "    END IF;\n"
            "    WITH batch AS (\n"
            f"        SELECT %1$s FROM {_fmt(t)} AS t\n"
            "        WHERE (%1$s) >= (%2$s) ORDER BY %1$s LIMIT " + n + "\n"
            "    ), next_key AS (\n"
            f"        SELECT %1$s FROM {_fmt(t)} AS t\n"
            "        WHERE (%1$s) >= (%2$s) ORDER BY %1$s OFFSET " + n + " LIMIT 1\n"
            "    ), put AS (\n"
            f"        UPDATE {_fmt(t)} AS t SET {_fmt(col)} = b.{_fmt(col)} FROM batch JOIN {_fmt(b)} AS b ON %6$s\n"
            f"        WHERE %7$s AND t.{_fmt(col)} IS NULL RETURNING 1\n"
            "    ), defaulted AS (\n"
            f"        UPDATE {_fmt(t)} AS t SET {_fmt(col)} = DEFAULT FROM batch\n"
            f"        WHERE %7$s AND t.{_fmt(col)} IS NULL AND %8$s\n"
            f"          AND NOT EXISTS (SELECT 1 FROM {_fmt(b)} AS b WHERE %6$s) RETURNING 1\n"
            "    ), moved AS (\n"
            f"        UPDATE {_fmt(p)} SET (%3$s) = (SELECT %4$s FROM next_key),\n"
            "            dbdeploy_rows_done = dbdeploy_rows_done + (SELECT count(*) FROM put),\n"
            "            dbdeploy_rows_defaulted = dbdeploy_rows_defaulted + (SELECT count(*) FROM defaulted),\n"
            "            dbdeploy_batches_done = dbdeploy_batches_done + 1\n"
            "        WHERE EXISTS (SELECT 1 FROM batch)\n"
            "    )\n"
            "    SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM put) INTO v_seen, v_put;\n"
            "    rows_seen := v_seen;\n    rows_restored := v_put;\n    RETURN NEXT;\n"
            "END")
        head = _fmt(batch_function_head(self._fn(ctx, "put"), "rows_restored", "plpgsql")) + "%L"
        # %8$s: whether the column has a default (decided from the keeper when the function is built).
        return S("EXECUTE pg_catalog.format({head}, pg_catalog.format({body}, {tk}, {cur}, {k}, {nk}, {pk}, {bm}, {tm},"
                 " CASE WHEN v_has_default THEN 'true' ELSE 'false' END));").format(
            head=literal(head), body=literal(body), tk=_keys("t.%1$I"),
            cur=_keys(f"(SELECT p.%1$I FROM {_fmt(p)} AS p)"), k=_keys("%1$I"), nk=_keys("next_key.%1$I"),
            pk=_keys("p.%1$I"), bm=_keys("b.%1$I = batch.%1$I", " AND "), tm=_keys("t.%1$I = batch.%1$I", " AND "))

    def _readd_step(self, ctx: PlanContext) -> Step:
        meta = dropped_columns_table(ctx)
        qt = literal(render(qualified(self.table)))
        qc = literal(render(ident(self.column)))
        key = f"{self.table}.{self.column}"
        keeper = self._regclass(ctx, "def")
        body = block(
            *self._refusals(ctx),
            if_then(column_exists(self.table, self.column),
                    if_then(self._restoring(ctx),
                            notice(ctx, f"the restore of {key} was started by an earlier run; continuing"),
                            S("RETURN;")),
                    # Prepared but never dropped (no dropped_columns row: that is written with the drop).
                    if_then(S("{} AND v_count = 0").format(self._unfinished_forward(ctx)),
                            *self._cleanup(ctx),
                            notice(ctx, f"the drop of {key} never finished; removed what it had prepared")),
                    notice(ctx, f"column {key} is present; nothing to restore"),
                    self._noop_function(ctx, "put", "rows_restored"),
                    S("RETURN;")),
            S("SELECT * INTO v_saved FROM {meta} WHERE {w};").format(meta=meta, w=self._where(ctx)),
            # A serial column's sequence back to its schema and name (names as data).
            if_then(S("v_saved.saved_sequence IS NOT NULL"),
                    S("EXECUTE 'ALTER SEQUENCE ' || pg_catalog.quote_ident({s}) || '.' "
                      "|| pg_catalog.quote_ident(v_saved.saved_sequence) || ' SET SCHEMA '"
                      " || pg_catalog.quote_ident(v_saved.sequence_schema);").format(s=literal(ctx.backup_schema)),
                    S("EXECUTE 'ALTER SEQUENCE ' || pg_catalog.quote_ident(v_saved.sequence_schema) || '.'"
                      " || pg_catalog.quote_ident(v_saved.saved_sequence)"
                      " || ' RENAME TO ' || pg_catalog.quote_ident(v_saved.sequence_name);"),
                    acl.put_back(ctx.backup_schema, regclass_of(S(
                        "pg_catalog.quote_ident(v_saved.sequence_schema) || '.'"
                        " || pg_catalog.quote_ident(v_saved.sequence_name)")), S("v_saved.saved_sequence"))),
            # Type, collation, default and comment: PostgreSQL's own rendering of the keeper's catalog entries.
            S("SELECT pg_catalog.format_type(a.atttypid, a.atttypmod),\n"
              "       (SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname)\n"
              "          FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace\n"
              "         WHERE co.oid = a.attcollation AND a.attcollation <> t.typcollation),\n"
              "       CASE WHEN a.attidentity = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,\n"
              "       pg_catalog.col_description(a.attrelid, a.attnum)\n"
              "INTO v_type, v_collation, v_default, v_comment\n"
              "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid\n"
              "LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum\n"
              "WHERE a.attrelid = {k} AND a.attname = {c};").format(k=keeper, c=literal(self.column)),
            S("v_has_default := v_default IS NOT NULL;"),
            self._key_from_backup(ctx),
            # Statistics for the batches' join with the copy (never analyzed since it was filled).
            S("ANALYZE {};").format(self._rel(ctx)),
            *cursor_table(self._rel(ctx, "restore"),
                          ["dbdeploy_rows_done", "dbdeploy_rows_defaulted", "dbdeploy_batches_done"], create=S(
                              "EXECUTE 'CREATE TABLE ' || {p} || ' AS SELECT ' || {k} || ' FROM ' || {qt}"
                              " || ' ORDER BY ' || {k} || ' LIMIT 1';").format(
                              p=literal(render(self._rel(ctx, "restore"))), k=_keys("%1$I"), qt=qt)),
            drop_batch_function(self._fn(ctx, "put")),
            self._restore_function(ctx),
            revoke_batch_function(self._fn(ctx, "put")),
            # Last, so that the table's ACCESS EXCLUSIVE lock is held only for these catalog changes
            # until the commit (everything above reads or writes dbdeploy's own tables).
            S("EXECUTE 'ALTER TABLE ' || {qt} || ' ADD COLUMN ' || {qc} || ' ' || v_type\n"
              "    || COALESCE(' COLLATE ' || v_collation, '');").format(qt=qt, qc=qc),
            if_then(S("v_has_default"),
                    S("EXECUTE 'ALTER TABLE ' || {qt} || ' ALTER COLUMN ' || {qc} || ' SET DEFAULT ' || v_default;"
                      ).format(qt=qt, qc=qc)),
            if_then(S("v_comment IS NOT NULL"),
                    S("EXECUTE 'COMMENT ON COLUMN ' || {qt} || '.' || {qc} || ' IS '"
                      " || pg_catalog.quote_literal(v_comment);"
                      ).format(qt=qt, qc=qc)),
            notice(ctx, f"re-added column {key}; restoring its values in batches"),
        )
        declare = ["v_saved record", "v_count bigint", "v_key text[]", "v_type text", "v_collation text",
                   "v_default text", "v_comment text", "v_has_default boolean"]
        return Step("restore_column", self.table, "ACCESS EXCLUSIVE", True, do_block(body, declare=declare),
                    f"re-add column {self.column} of {self.table} (nullable, no rewrite) with its default")

    def _keeper_checks(self, ctx: PlanContext) -> sql.Composable:
        """A query over the keeper's CHECK constraints on the column (oid, name, validated)."""
        return S("SELECT c.oid, c.conname::text AS name, c.convalidated FROM pg_catalog.pg_constraint c\n"
                 "    WHERE c.conrelid = {k} AND c.contype = 'c' AND {n} = ANY (c.conkey) ORDER BY c.conname").format(
            k=self._regclass(ctx, "def"), n=self._keeper_attr(ctx))

    def _constraints_step(self, ctx: PlanContext) -> Step:
        qt = literal(render(qualified(self.table)))
        qc = literal(render(ident(self.column)))
        meta = dropped_columns_table(ctx)
        keeper = self._regclass(ctx, "def")
        nn = literal(self._not_null_check(ctx))
        fk = S(
            "FOR v_fk IN SELECT f FROM pg_catalog.jsonb_array_elements(COALESCE(v_fks, '[]'::jsonb)) AS e(f) LOOP\n"
            "    CONTINUE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conrelid = {rel}"
            " AND c.conname = v_fk->>'name');\n"
            "{add}\n"
            "END LOOP;").format(rel=regclass(self.table),
                                add=indented(add_foreign_key_from_json(qt, S("v_fk->>'name'"))))
        body = block(
            if_then(S("{} IS NULL OR NOT {}").format(keeper, self._restoring(ctx)), S("RETURN;")),
            if_then(S("EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = {k} AND a.attname = {c}"
                      " AND {proven})"
                      " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint"
                      " WHERE conrelid = {rel} AND conname = {nn})"
                      ).format(k=keeper, c=literal(self.column), rel=regclass(self.table), nn=nn,
                               proven=NOT_NULL_PROVEN),
                    S("EXECUTE 'ALTER TABLE ' || {qt} || ' ADD CONSTRAINT ' || pg_catalog.quote_ident({nn})"
                      " || ' CHECK (' || {qc} || ' IS NOT NULL) NOT VALID';").format(qt=qt, nn=nn, qc=qc)),
            # PostgreSQL 18: the column's NOT NULL … NOT VALID comes back as it was (NULL rows may remain).
            S("FOR v_con IN SELECT nn.oid, nn.conname::text AS name FROM pg_catalog.pg_attribute a\n"
              "    JOIN pg_catalog.pg_constraint nn ON nn.conrelid = a.attrelid AND nn.contype = 'n'"
              " AND nn.conkey[1] = a.attnum AND NOT nn.convalidated\n"
              "    WHERE a.attrelid = {k} AND a.attname = {c} LOOP\n"
              "    CONTINUE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attribute t WHERE t.attrelid = {rel}"
              " AND t.attname = {c} AND t.attnotnull);\n"
              "    EXECUTE 'ALTER TABLE ' || {qt} || ' ADD CONSTRAINT ' || pg_catalog.quote_ident(v_con.name) || ' '"
              " || pg_catalog.pg_get_constraintdef(v_con.oid);\n"
              "END LOOP;").format(k=keeper, c=literal(self.column), rel=regclass(self.table), qt=qt),
            S("FOR v_con IN {q} LOOP\n"
              "    CONTINUE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conrelid = {rel}"
              " AND c.conname = v_con.name);\n"
              "    v_def := pg_catalog.pg_get_constraintdef(v_con.oid);\n"
              "    IF pg_catalog.right(v_def, 10) <> ' NOT VALID' THEN\n"
              "        v_def := v_def || ' NOT VALID';\n"
              "    END IF;\n"
              "    EXECUTE 'ALTER TABLE ' || {qt} || ' ADD CONSTRAINT ' || pg_catalog.quote_ident(v_con.name) || ' '"
              " || v_def;\n"
              "END LOOP;").format(q=self._keeper_checks(ctx), rel=regclass(self.table), qt=qt),
            S("SELECT m.foreign_keys INTO v_fks FROM {meta} AS m WHERE {w};").format(meta=meta, w=self._where(ctx)),
            fk,
        )
        return Step("restore_column_constraints", self.table, "ACCESS EXCLUSIVE", True,
                    do_block(body, declare=["v_con record", "v_def text", "v_fks jsonb", "v_fk jsonb"]),
                    f"add NOT NULL check, checks and foreign keys of {self.column} of {self.table} NOT VALID")

    def _validate_step(self, ctx: PlanContext) -> Step:
        qt = literal(render(qualified(self.table)))
        meta = dropped_columns_table(ctx)
        keeper = self._regclass(ctx, "def")
        nn = literal(self._not_null_check(ctx))
        body = block(
            if_then(S("{} IS NULL OR NOT {}").format(keeper, self._restoring(ctx)), S("RETURN;")),
            if_then(S("EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = {rel} AND conname = {nn}"
                      " AND NOT convalidated)").format(rel=regclass(self.table), nn=nn),
                    S("EXECUTE 'ALTER TABLE ' || {qt} || ' VALIDATE CONSTRAINT ' || pg_catalog.quote_ident({nn});"
                      ).format(qt=qt, nn=nn)),
            S("FOR v_name IN SELECT k.name FROM ({q}) AS k WHERE k.convalidated\n"
              "    UNION ALL SELECT e.f->>'name' FROM {meta} AS m,"
              " pg_catalog.jsonb_array_elements(COALESCE(m.foreign_keys, '[]'::jsonb)) AS e(f)\n"
              "    WHERE {w} AND (e.f->>'validated')::boolean LOOP\n"
              "    IF EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conrelid = {rel} AND c.conname = v_name"
              " AND NOT c.convalidated) THEN\n"
              "        EXECUTE 'ALTER TABLE ' || {qt} || ' VALIDATE CONSTRAINT ' || pg_catalog.quote_ident(v_name);\n"
              "    END IF;\n"
              "END LOOP;").format(q=self._keeper_checks(ctx), meta=meta, w=self._where(ctx), rel=regclass(self.table),
                                  qt=qt),
        )
        return Step("validate_constraint", self.table, "SHARE UPDATE EXCLUSIVE", True,
                    do_block(body, declare=["v_name text"]),
                    f"validate the restored constraints of {self.column} of {self.table}")

    def _not_null_step(self, ctx: PlanContext) -> Step:
        qt = literal(render(qualified(self.table)))
        qc = literal(render(ident(self.column)))
        meta = dropped_columns_table(ctx)
        keeper = self._regclass(ctx, "def")
        nn = literal(self._not_null_check(ctx))
        body = block(
            if_then(S("{} IS NULL OR NOT {}").format(keeper, self._restoring(ctx)), S("RETURN;")),
            S("SELECT * INTO v_saved FROM {meta} WHERE {w};").format(meta=meta, w=self._where(ctx)),
            S("SELECT a.attidentity INTO v_identity FROM pg_catalog.pg_attribute a WHERE a.attrelid = {k}"
              " AND a.attname = {c};").format(k=keeper, c=literal(self.column)),
            if_then(S("EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = {rel} AND conname = {nn})"
                      ).format(rel=regclass(self.table), nn=nn),
                    S("EXECUTE 'ALTER TABLE ' || {qt} || ' ALTER COLUMN ' || {qc} || ' SET NOT NULL';").format(
                        qt=qt, qc=qc),
                    S("EXECUTE 'ALTER TABLE ' || {qt} || ' DROP CONSTRAINT ' || pg_catalog.quote_ident({nn});").format(
                        qt=qt, nn=nn)),
            if_then(S("v_identity IN ('a', 'd') AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a"
                      " WHERE a.attrelid = {rel} AND a.attname = {c} AND a.attidentity <> '')").format(
                        rel=regclass(self.table), c=literal(self.column)),
                    S("EXECUTE 'ALTER TABLE ' || {qt} || ' ALTER COLUMN ' || {qc} || ' ADD GENERATED '\n"
                      "    || CASE v_identity WHEN 'a' THEN 'ALWAYS' ELSE 'BY DEFAULT' END || ' AS IDENTITY';").format(
                        qt=qt, qc=qc),
                    if_then(S("v_saved.sequence_value IS NOT NULL"),
                            S("PERFORM pg_catalog.setval(pg_catalog.pg_get_serial_sequence({qt}, {c}),"
                              " v_saved.sequence_value::bigint);").format(qt=qt, c=literal(self.column)))),
            if_then(S("v_saved.saved_sequence IS NOT NULL"),
                    S("EXECUTE 'ALTER SEQUENCE ' || pg_catalog.quote_ident(v_saved.sequence_schema) || '.'"
                      " || pg_catalog.quote_ident(v_saved.sequence_name) || ' OWNED BY ' || {qt} || '.' || {qc};"
                      ).format(qt=qt, qc=qc)),
        )
        return Step("restore_column_not_null", self.table, "ACCESS EXCLUSIVE", True,
                    do_block(body, declare=["v_saved record", "v_identity text"]),
                    f"set NOT NULL (proven by the validated check), identity and sequence of {self.column} "
                    f"of {self.table}")

    def _finish_step(self, ctx: PlanContext) -> Step:
        meta = dropped_columns_table(ctx)
        qt = literal(render(qualified(self.table)))
        key = f"{self.table}.{self.column}"
        keeper = self._regclass(ctx, "def")
        schema = literal(split_table(self.table)[0])
        body = block(
            if_then(S("{} IS NULL OR NOT {}").format(keeper, self._restoring(ctx)),
                    # Nothing restored by this run: drop the no-op batch function, if any.
                    drop_batch_function(self._fn(ctx, "put")), S("RETURN;")),
            # The keeper's indexes that are not there yet: those the specs do not know (the spec-known ones
            # were rebuilt concurrently by the steps before). Only known at run time, and CREATE INDEX
            # CONCURRENTLY cannot run in a function or DO block, so they are built here, writes waiting.
            S("FOR v_con IN SELECT i.indexrelid AS oid, c.relname::text AS name, i.indisunique,\n"
              "        con.conname::text AS conname, con.condeferrable, con.condeferred\n"
              "    FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid\n"
              "    LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid\n"
              "        AND con.conrelid = i.indrelid\n"
              "        AND con.contype = 'u'\n"
              "    WHERE i.indrelid = {k} ORDER BY c.relname LOOP\n"
              "    v_def := pg_catalog.pg_get_indexdef(v_con.oid);\n"
              "    v_head := 'CREATE ' || CASE WHEN v_con.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '\n"
              "        || pg_catalog.quote_ident(v_con.name) || ' ON ' || {k}::text || ' USING ';\n"
              "    IF pg_catalog.left(v_def, pg_catalog.length(v_head)) IS DISTINCT FROM v_head THEN\n"
              "        RAISE EXCEPTION '%', {msg} || v_con.name;\n"
              "    END IF;\n"
              "    IF {built} IS NULL THEN\n"
              "        EXECUTE 'CREATE ' || CASE WHEN v_con.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '\n"
              "            || pg_catalog.quote_ident(v_con.name) || ' ON ' || {qt} || ' USING '\n"
              "            || pg_catalog.substr(v_def, pg_catalog.length(v_head) + 1);\n"
              "        v_built := pg_catalog.array_append(v_built, v_con.name);\n"
              "    END IF;\n"
              "    IF v_con.conname IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c"
              " WHERE c.conrelid = {rel} AND c.conname = v_con.conname) THEN\n"
              "        EXECUTE 'ALTER TABLE ' || {qt} || ' ADD CONSTRAINT ' || pg_catalog.quote_ident(v_con.conname)\n"
              "            || ' UNIQUE USING INDEX ' || pg_catalog.quote_ident(v_con.name)\n"
              "            || CASE WHEN v_con.condeferrable THEN ' DEFERRABLE' ELSE '' END\n"
              "            || CASE WHEN v_con.condeferred THEN ' INITIALLY DEFERRED' ELSE '' END;\n"
              "    END IF;\n"
              "END LOOP;").format(k=keeper, qt=qt, rel=regclass(self.table), built=regclass_of(S(
                  "pg_catalog.quote_ident({}) || '.' || pg_catalog.quote_ident(v_con.name)").format(schema)),
                                  msg=literal(f"dbdeploy {ctx.label}: cannot read the kept definition of index ")),
            if_then(S("v_built IS NOT NULL"),
                    S("RAISE NOTICE '%', {m} || pg_catalog.array_to_string(v_built, ', ');").format(
                        m=literal(f"dbdeploy {ctx.label}: built in this ACCESS EXCLUSIVE transaction (writes to "
                                  f"{self.table} waited while they built; the specs do not know them, so they "
                                  "could not be built concurrently): "))),
            S("SELECT dbdeploy_rows_done, dbdeploy_batches_done INTO v_restored, v_batches FROM {};").format(
                self._rel(ctx, "restore")),
            self._key_from_backup(ctx),
            S("EXECUTE 'SELECT count(*) FROM ' || {qt} || ' AS t WHERE NOT EXISTS (SELECT 1 FROM ' || {b}\n"
              "    || ' AS b WHERE ' || {km} || ')' INTO v_new;").format(
                b=literal(render(self._rel(ctx))), qt=qt, km=_keys("t.%1$I = b.%1$I", " AND ")),
            S("EXECUTE 'SELECT count(*) FROM ' || {b} || ' AS b WHERE NOT EXISTS (SELECT 1 FROM ' || {qt}\n"
              "    || ' AS t WHERE ' || {km} || ')' INTO v_gone;").format(
                b=literal(render(self._rel(ctx))), qt=qt, km=_keys("t.%1$I = b.%1$I", " AND ")),
            *self._cleanup(ctx),
            S("DELETE FROM {meta} WHERE {w};").format(meta=meta, w=self._where(ctx)),
            S("RAISE NOTICE '%', {m1} || v_restored || {m2} || v_new || {m3} || v_gone || {m4} || v_batches"
              " || {m5};").format(
                m1=literal(f"dbdeploy {ctx.label}: restored column {key}: the saved values of "),
                m2=literal(" row(s) put back; "),
                m3=literal(" row(s) inserted since the drop got the column default (NULL without one); the saved "
                           "values of "),
                m4=literal(" row(s) deleted since were dropped with the copy; "),
                m5=literal(" batch(es)")),
        )
        return Step("restore_column_finish", self.table, "ACCESS EXCLUSIVE", True,
                    do_block(body, declare=["v_con record", "v_def text", "v_head text", "v_key text[]",
                                            "v_restored bigint", "v_new bigint", "v_gone bigint", "v_built text[]",
                                            "v_batches bigint"]),
                    f"build the indexes of {self.column} of {self.table} the specs do not know (writes wait), "
                    "remove the saved copy")

    def rollback(self, ctx: PlanContext) -> list[Step]:
        """Re-add the column online and put every saved value back (see the module docstring)."""
        steps = [
            self._readd_step(ctx),
            self._batch_step("restore_column_values", self._fn(ctx, "put"), "rows_restored", "ROW EXCLUSIVE",
                             f"put the saved values of {self.table}.{self.column} back in batches of "
                             f"{self.batch_size} rows at most, each sized to take about batch_time "
                             "(never over a value written since)"),
            self._constraints_step(ctx),
            self._validate_step(ctx),
            self._not_null_step(ctx),
        ]
        for index in self._spec_indexes(ctx):
            steps.append(drop_invalid_index(ctx, self.table, index))
            steps.append(Step("create_index", self.table, "SHARE UPDATE EXCLUSIVE", False,
                              render(create_index(self.table, index, concurrently=True)) + ";",
                              f"rebuild index {index.resolved_name(self.table)} on {self.table} concurrently"))
        for index, constraint in self._spec_uniques(ctx):
            steps.append(drop_invalid_index(ctx, self.table, index))
            steps.append(self._unique_build_step(ctx, index))
            if constraint is not None:
                steps.append(attach_unique(ctx, self.table, constraint, index.columns, owned=False,
                                           nulls_not_distinct=index.nulls_not_distinct))
        steps.append(self._finish_step(ctx))
        return steps

    def rollback_preflight(self, ctx: PlanContext) -> list:
        """The restore's refusals, checked before the rollback changes anything: no saved definition
        or values, or a NOT NULL column without a default and rows inserted since the drop that have
        no saved value (SET NOT NULL would fail after the column was re-added).

        Checked only while the table exists and lacks the column: an absent table may be restored
        by an earlier step of the same rollback (a later DropTable), so the restore step's own check
        stays the guard for that case.
        """
        meta = dropped_columns_table(ctx)
        missing = S("NOT EXISTS (SELECT 1 FROM {meta} WHERE {w})").format(meta=meta, w=self._where(ctx))
        no_copy = fail(ctx, f"no saved copy of {self.table}.{self.column}; cannot restore it",
                       "The column was dropped outside this migration; restore it by hand.")
        return [if_then(
            S("{} AND NOT {}").format(relation_exists(self.table), column_exists(self.table, self.column)),
            if_then(relation_missing(f"{ctx.backup_schema}.dropped_columns"), no_copy),
            if_then(S("{} AND {}").format(relation_exists(f"{ctx.backup_schema}.dropped_columns"), missing), no_copy),
            if_then(S("{} IS NULL OR {} IS NULL").format(self._regclass(ctx), self._regclass(ctx, "def")),
                    fail(ctx, f"the saved values of {self.table}.{self.column} are missing from "
                              f"{ctx.backup_schema}; cannot restore them",
                         "Restore the backup table from a database backup, or restore the column by hand.")),
            self._unsaved_rows_refusal(ctx),
        ), self._readded_refusal(ctx)]

    def _readded_refusal(self, ctx: PlanContext) -> sql.Composable:
        """Refuse while a column of the dropped column's name was added again after the drop (by hand or
        a later migration) and the saved copy is still kept; a column a later operation of this same
        migration re-added is dropped by this rollback first, and a column this rollback's own restore
        re-added (an interrupted rollback) does not count."""
        key = f"{self.table}.{self.column}"
        backup = f"{ctx.backup_schema}.{self._backup(ctx)}"
        kept = S("EXISTS (SELECT 1 FROM {meta} WHERE {w})").format(meta=dropped_columns_table(ctx),
                                                                    w=self._where(ctx))
        return if_then(
            S("{} AND {} AND NOT {} AND NOT {}").format(column_exists(self.table, self.column),
                                                        relation_exists(f"{ctx.backup_schema}.dropped_columns"),
                                                        is_owned(ctx, "column", key), self._restoring(ctx)),
            if_then(kept, fail(ctx, f"cannot restore {key}: a column of that name was added again after "
                                    f"{ctx.label} dropped it; its values before the drop are kept in {backup}",
                               f"Save what the re-added {key} holds and drop or rename it, then re-run the "
                               f"rollback; or, to keep the re-added column, drop {backup} and delete its row from "
                               f"{ctx.backup_schema}.dropped_columns.")))
