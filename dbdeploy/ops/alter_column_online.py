"""The online form of AlterColumnType: a shadow column, kept in sync, swapped in by one short transaction.

Used when the change needs a table rewrite (``integer`` → ``bigint``, ``text`` → ``integer`` with
``using``, …) on a table the specs created (the indexes, keys and foreign keys to move are known at
plan time: ``CREATE INDEX CONCURRENTLY`` cannot be built from the catalog at run time). Each changed
column is a :class:`Target`: the column itself and, when it is referenced by foreign keys, every
referencing column that has the same old type (``integer`` → ``bigint`` of a primary key widens the
referencing columns the same way, in the same swap).

The swap **exchanges** names: the shadow column ``s`` (new type) becomes ``c`` and the old column
becomes ``s``; the index built concurrently on the shadow under the name ``i_swap`` takes the
original index's name ``i`` and the old index becomes ``i_swap``. So every step can be run again in
any state (a re-run's ``CREATE INDEX CONCURRENTLY IF NOT EXISTS i_swap ON t (s)`` finds ``i_swap``
already there: on the new column before the swap, on the kept old column after it), and the rollback
is the same swap in the other direction. Forward steps:

1. ``alter_type_prepare`` per target (short, ACCESS EXCLUSIVE: ADD COLUMN and CREATE TRIGGER are
   catalog only): refuses views and rules on the column, a generated or identity column, a
   partitioned table, a table without a one-column primary key, foreign keys, unique/primary
   constraints and indexes on the column that the bundle does not know; adds ``s`` (nullable, no
   default), a BEFORE INSERT OR UPDATE trigger that sets ``NEW.s`` from ``NEW.c`` (``using``, or a
   cast), and the backfill's cursor table and batch function.
2. ``alter_type_backfill`` per target (no transaction, ROW EXCLUSIVE): batches in primary-key order set
   ``s`` where it differs from the conversion of ``c`` (:mod:`dbdeploy.ops.batches`). A row written
   meanwhile is converted by the trigger; the batch's UPDATE re-reads a row a writer changed
   (READ COMMITTED re-evaluation), so no write is lost.
3. ``alter_type_not_null`` / ``alter_type_validate_not_null``: for a NOT NULL column, ``CHECK (s IS
   NOT NULL) NOT VALID`` then VALIDATE (SHARE UPDATE EXCLUSIVE), so the swap's SET NOT NULL does not
   scan.
4. ``CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS i_swap ON t (… s …)`` for every index, unique
   constraint and primary key on the column (SHARE UPDATE EXCLUSIVE), after ``drop_invalid_index``.
5. ``alter_type_swap`` (one short transaction, ACCESS EXCLUSIVE on every changed table): foreign keys
   on the columns dropped (definitions read first: PostgreSQL's deparse), then per target: CHECK
   constraints on the column renamed away (they stay on the old column) and re-added on the new one
   NOT VALID from their deparse, default, NOT NULL (no scan: the validated check), sequence
   ownership, primary key and unique constraints (``ADD … USING INDEX``), index names exchanged,
   columns exchanged, trigger dropped; then the foreign keys re-added NOT VALID. The old column keeps
   its values (nullable, no trigger) for the rollback.
6. The index builds of 4 again: the primary key's and unique constraints' indexes were consumed by
   ``USING INDEX``; built now on the kept old column, they are what the rollback's ``USING INDEX``
   takes back.
7. ``alter_type_validate`` (SHARE UPDATE EXCLUSIVE): VALIDATE the re-added foreign keys and checks.

The rollback: preflight (refuses, with a count, when values written since the swap do not fit the old
type; when the saved state is missing while the column has the new type), then per target a reverse
trigger (``NEW.s := CAST(NEW.c AS old)``) and a batched backfill of the old column where it no longer
matches (a row unchanged since the swap keeps its original old value exactly), the NOT NULL proof on
the old column, the same index builds, the swap back (the checks added by the forward dropped, the
kept ones renamed back), the shadow column dropped, and the foreign keys validated. A forward that
stopped before its swap is rolled back by dropping the shadow column, trigger and helpers.

What the rollback needs from before the forward (NOT NULL, the constraint names moved) is saved by
the forward in ``<backup schema>.altered_column_types`` (one row per target).
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from dbdeploy.bundle.step import Step
from dbdeploy.model.components import Index
from dbdeploy.model.names import derived_name, split_table
from dbdeploy.ops.base import PlanContext
from dbdeploy.ops.batches import (
    batch_loop,
    call_batch_function,
    create_batch_function,
    cursor_table,
    drop_batch_function,
    noop_batch_function,
)
from dbdeploy.ops.common import S, attnum, backup_name, column_exists, fail, notice, regclass, relation_missing
from dbdeploy.ops.constraint_steps import drop_invalid_index
from dbdeploy.ops.ddl import create_index
from dbdeploy.sql import acl, ident, literal, qualified, render
from dbdeploy.sql.blocks import block, do_block, if_then

_INT_RANGES = {"int2": (-32768, 32767), "int4": (-2147483648, 2147483647)}


def saved_types_table(ctx: PlanContext) -> sql.Identifier:
    """``<backup schema>.altered_column_types``: one row per column whose type a version changed (in place
    or online), with the old type as PostgreSQL spells it (``format_type``), for the rollback."""
    return ident(ctx.backup_schema, "altered_column_types")


def create_saved_types_table(saved: sql.Identifier) -> sql.Composable:
    """Create :func:`saved_types_table` (idempotent; columns of later releases added with IF NOT EXISTS)
    and close it to every role but the deployer's."""
    return block(
        S("CREATE TABLE IF NOT EXISTS {saved} (\n"
          "    version text NOT NULL, table_name text NOT NULL, column_name text NOT NULL,\n"
          "    old_type text NOT NULL, old_typid oid NOT NULL, old_typmod integer NOT NULL,\n"
          "    new_type text NOT NULL, changed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),\n"
          "    PRIMARY KEY (version, table_name, column_name)\n"
          ");").format(saved=saved),
        S("ALTER TABLE {saved} ADD COLUMN IF NOT EXISTS method text NOT NULL DEFAULT 'in_place',"
          " ADD COLUMN IF NOT EXISTS old_not_null boolean, ADD COLUMN IF NOT EXISTS swapped boolean,"
          " ADD COLUMN IF NOT EXISTS check_names text[], ADD COLUMN IF NOT EXISTS check_kept text[],"
          " ADD COLUMN IF NOT EXISTS pending_tables text[], ADD COLUMN IF NOT EXISTS pending_names text[];"
          ).format(saved=saved),
        acl.restrict_table(saved),
    )


@dataclass(frozen=True)
class MovedIndex:
    """An index on the column that the swap moves: ``index`` is its definition on the old column (its
    name the original), ``swap`` the same definition on the shadow column under the swap name;
    ``constraint`` is ``'p'``/``'u'`` for a primary key / unique constraint's index (name = constraint)."""

    index: Index
    swap: Index
    constraint: str = ""


@dataclass(frozen=True)
class Target:
    """One column the operation changes: ``table.column`` from ``old_type`` to ``new_type`` (parsed
    :class:`~dbdeploy.sql.TypeName`), converted by ``using`` (an Expression over ``column``, or None
    for a cast); ``key`` is the table's one-column primary key (batch order); ``indexes`` the
    indexes the swap moves; ``old_shape`` the old type's canonical name (``int4``…)."""

    table: str
    column: str
    old_type: object
    new_type: object
    using: object
    key: str
    indexes: tuple[MovedIndex, ...]
    old_shape: str
    shadow: str


def shadow_name(ctx: PlanContext, column: str) -> str:
    """The shadow column's name (the kept old column's after the swap): ``<column>_v<version>_swap``."""
    return derived_name(column, f"v{ctx.version}", suffix="swap")


def swap_index(ctx: PlanContext, table: str, index: Index, column: str, shadow: str) -> Index:
    """``index`` on the shadow column under its swap name."""
    name = derived_name(index.resolved_name(table), f"v{ctx.version}", suffix="swap")
    columns = [shadow if key == column else key for key in index.columns]
    include = [shadow if key == column else key for key in index.include]
    return index.model_copy(update={"columns": columns, "include": include, "name": name})


class OnlinePlan:
    """The steps of the online form for ``targets`` (the first is the operation's own column)."""

    def __init__(self, ctx: PlanContext, kind: str, targets: list[Target], batch_size: int):
        self.ctx, self.kind, self.targets, self.batch_size = ctx, kind, targets, batch_size
        self.main = targets[0]

    # --- names -----------------------------------------------------------------------------------

    def _base(self, t: Target) -> str:
        return backup_name(self.ctx, f"op{self.ctx.index}", split_table(t.table)[1], t.column)

    def _rel(self, t: Target, suffix: str) -> sql.Identifier:
        return ident(self.ctx.backup_schema, derived_name(self._base(t), suffix=suffix))

    def _trigger_name(self, t: Target) -> str:
        return derived_name("dbdeploy", f"v{self.ctx.version}", "alter", t.column)

    def _trigger(self, t: Target) -> sql.Identifier:
        return ident(self._trigger_name(t))

    def _nn_check(self, t: Target) -> str:
        return derived_name(f"dbdeploy_v{self.ctx.version}", t.column, suffix="swap_nn")

    def _saved(self) -> sql.Identifier:
        return saved_types_table(self.ctx)

    def _where(self, t: Target) -> sql.Composable:
        return S("version = {v} AND table_name = {t} AND column_name = {c}").format(
            v=literal(self.ctx.version), t=literal(t.table), c=literal(t.column))

    def _row(self, t: Target, condition: str = "") -> sql.Composable:
        """EXISTS: the saved row of ``t`` (with ``condition`` on it: ``swapped`` / ``NOT swapped``)."""
        extra = {"": S(""), "swapped": S(" AND swapped"), "NOT swapped": S(" AND NOT swapped")}[condition]
        return S("({reg} IS NOT NULL AND EXISTS (SELECT 1 FROM {saved} WHERE {w}{extra}))").format(
            reg=regclass(f"{self.ctx.backup_schema}.altered_column_types"), saved=self._saved(), w=self._where(t),
            extra=extra)

    def _conv(self, t: Target, over: sql.Composable) -> sql.Composable:
        """The new value for old value ``over``: ``using`` evaluated with the column bound to ``over``."""
        if t.using is None:
            return S("CAST({} AS {})").format(over, t.new_type.sql())
        return S("(SELECT {u} FROM (SELECT {o}) AS dbdeploy_old({c}))").format(
            u=t.using.sql(), o=over, c=ident(t.column))

    def _back(self, t: Target, over: sql.Composable) -> sql.Composable:
        return S("CAST({} AS {})").format(over, t.old_type.sql())

    # --- shared pieces -----------------------------------------------------------------------------

    def _batch_function(self, t: Target, suffix: str, target_col: str, value: sql.Composable,
                        stale: sql.Composable) -> sql.Composable:
        """The batch function ``…_<suffix>(p_rows)``: the next rows in key order, ``target_col`` set to
        ``value`` where ``stale`` holds (both over the table's row ``t``), the cursor moved with the batch."""
        tbl, key, p = qualified(t.table), ident(t.key), self._rel(t, f"{suffix}_progress")
        body = S(
            "WITH batch AS (\n"
            "    SELECT t.{k} AS dbdeploy_key FROM {tbl} AS t WHERE t.{k} >= (SELECT p.{k} FROM {p} AS p)\n"
            "    ORDER BY t.{k} LIMIT $1\n"
            "), next_key AS (\n"
            "    SELECT t.{k} AS dbdeploy_key FROM {tbl} AS t WHERE t.{k} >= (SELECT p.{k} FROM {p} AS p)\n"
            "    ORDER BY t.{k} OFFSET $1 LIMIT 1\n"
            "), changed AS (\n"
            "    UPDATE {tbl} AS t SET {col} = {value}\n"
            "    WHERE t.{k} >= (SELECT p.{k} FROM {p} AS p) AND t.{k} <= (SELECT pg_catalog.max(b.dbdeploy_key)"
            " FROM batch AS b)\n"
            "        AND {stale} RETURNING 1\n"
            "), moved AS (\n"
            "    UPDATE {p} SET {k} = (SELECT dbdeploy_key FROM next_key),\n"
            "        dbdeploy_rows_done = dbdeploy_rows_done + (SELECT pg_catalog.count(*) FROM changed),\n"
            "        dbdeploy_batches_done = dbdeploy_batches_done + 1\n"
            "    WHERE EXISTS (SELECT 1 FROM batch)\n"
            ")\n"
            "SELECT (SELECT pg_catalog.count(*) FROM batch), (SELECT pg_catalog.count(*) FROM changed)").format(
            k=key, tbl=tbl, p=p, col=ident(target_col), value=value, stale=stale)
        return block(
            if_then(S("{} IS NULL").format(regclass(render(p))),
                    *cursor_table(p, ["dbdeploy_rows_done", "dbdeploy_batches_done"], create=S(
                        "CREATE TABLE {p} AS SELECT pg_catalog.min(t.{k}) AS {k} FROM {tbl} AS t;").format(
                        p=p, k=key, tbl=tbl))),
            drop_batch_function(self._rel(t, suffix)),
            create_batch_function(self._rel(t, suffix), "rows_copied", "sql", body),
        )

    def _sync_trigger(self, t: Target, set_col: str, value: sql.Composable, when: sql.Composable) -> sql.Composable:
        """A BEFORE INSERT OR UPDATE trigger on ``t.table`` setting ``NEW.<set_col>`` to ``value`` (over
        ``NEW``) when ``when`` holds; its function in the backup schema."""
        fn = self._rel(t, "sync")
        body = S("BEGIN\n    IF {when} THEN\n        NEW.{col} := {value};\n    END IF;\n    RETURN NEW;\nEND").format(
            when=when, col=ident(set_col), value=value)
        return block(
            S("CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql"
              " SET search_path = pg_catalog, pg_temp AS {body};").format(fn=fn, body=literal(render(body))),
            if_then(S("NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = {rel} AND tgname ="
                      " {name})").format(
                rel=regclass(t.table), name=literal(self._trigger_name(t))),
                S("CREATE TRIGGER {trg} BEFORE INSERT OR UPDATE ON {tbl} FOR EACH ROW EXECUTE FUNCTION {fn}();").format(
                    trg=self._trigger(t), tbl=qualified(t.table), fn=fn)),
        )

    def _drop_helpers(self, t: Target) -> sql.Composable:
        return block(
            S("DROP TRIGGER IF EXISTS {trg} ON {tbl};").format(trg=self._trigger(t), tbl=qualified(t.table)),
            S("DROP FUNCTION IF EXISTS {}();").format(self._rel(t, "sync")),
            *(S("DROP TABLE IF EXISTS {};").format(self._rel(t, f"{s}_progress")) for s in ("fill", "back")),
            drop_batch_function(self._rel(t, "fill")), drop_batch_function(self._rel(t, "back")),
        )

    def _noop(self, t: Target, suffix: str) -> sql.Composable:
        return noop_batch_function(self._rel(t, suffix), "rows_copied")

    def _index_steps(self, after_swap: bool = False) -> list[Step]:
        """The concurrent builds of the swap's indexes; ``after_swap``: the same statements after the swap,
        where they build, on the kept old column, the key indexes the swap consumed (for the rollback)."""
        steps = []
        for t in self.targets:
            for moved in t.indexes:
                steps.append(drop_invalid_index(self.ctx, t.table, moved.swap))
                steps.append(Step("create_index", t.table, "SHARE UPDATE EXCLUSIVE", False,
                                  render(create_index(t.table, moved.swap, concurrently=True)) + ";",
                                  f"build {moved.swap.resolved_name(t.table)} on {t.table} concurrently "
                                  + (f"on the kept old column if the swap used it (the rollback's "
                                     f"{moved.index.resolved_name(t.table)})" if after_swap else
                                     f"(the swap's {moved.index.resolved_name(t.table)})")))
        return steps

    # --- forward -------------------------------------------------------------------------------------

    def _refusals(self, t: Target) -> sql.Composable:
        ctx, where = self.ctx, f"{t.table}.{t.column}"
        rel, num = regclass(t.table), attnum(t.table, t.column)
        known_indexes = S(", ").join(literal(m.index.resolved_name(t.table)) for m in t.indexes) \
            if t.indexes else S("NULL")
        return block(
            S("SELECT pg_catalog.string_agg(DISTINCT r.ev_class::pg_catalog.regclass::pg_catalog.text, ', ')"
              " INTO v_text\nFROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid\n"
              "WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.refobjid = {rel}"
              " AND d.refobjsubid = {num} AND r.ev_class <> {rel};").format(rel=rel, num=num),
            if_then(S("v_text IS NOT NULL"), fail(
                ctx, f"cannot change the type of {where} online: these views or rules use it (after the swap "
                     "they would read the old column):", "Drop the views first (RawSQL with a rollback that "
                     "re-creates them), change the type, then re-create them.", detail=S("v_text"))),
            if_then(S("EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = {rel} AND a.attnum = {num}"
                      " AND (a.attidentity <> '' OR a.attgenerated <> ''))").format(rel=rel, num=num), fail(
                ctx, f"cannot change the type of {where} online: it is an identity or generated column",
                "Change it with RawSQL in a maintenance window.")),
            if_then(S("EXISTS (SELECT 1 FROM pg_catalog.pg_attrdef d JOIN pg_catalog.pg_attribute a"
                      " ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = {rel} AND"
                       " a.attgenerated <> ''"
                      " AND EXISTS (SELECT 1 FROM pg_catalog.pg_depend x WHERE x.objid = d.oid AND x.refobjid = {rel}"
                      " AND x.refobjsubid = {num}))").format(rel=rel, num=num), fail(
                ctx, f"cannot change the type of {where} online: a generated column is computed from it",
                "Change it with RawSQL in a maintenance window.")),
            if_then(S("(SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = {rel}) <> 'r'").format(rel=rel), fail(
                ctx, f"cannot change the type of {where} online: {t.table} is not a plain table (partitioned?)",
                "Change the partitions' column with RawSQL in a maintenance window.")),
            S("SELECT pg_catalog.string_agg(i.indexrelid::pg_catalog.regclass::pg_catalog.text, ', ') INTO v_text\n"
              "FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid\n"
              "WHERE i.indrelid = {rel} AND ({num} = ANY (i.indkey) OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend d\n"
              "    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = i.indexrelid\n"
              "    AND d.refobjid = {rel} AND d.refobjsubid = {num}))\n"
              "  AND ic.relname::pg_catalog.text NOT IN ({known})\n"
              "  AND ic.relname::pg_catalog.text NOT LIKE {swap};").format(
                rel=rel, num=num, known=known_indexes, swap=literal(f"%_v{ctx.version}_swap")),
            if_then(S("v_text IS NOT NULL"), fail(
                ctx, f"cannot change the type of {where} online: the specs do not know these indexes on it, so the "
                     "bundle cannot rebuild them concurrently:",
                "Declare them in the specs (CreateIndex) before this migration, or drop them first.",
                detail=S("v_text"))),
        )

    def prepare_step(self, t: Target) -> Step:
        ctx, where = self.ctx, f"{t.table}.{t.column}"
        rel = regclass(t.table)
        nn = S("(SELECT a.attnotnull FROM pg_catalog.pg_attribute a WHERE a.attrelid = {rel} AND a.attname ="
               " {c})").format(
            rel=rel, c=literal(t.column))
        body = block(
            create_saved_types_table(self._saved()),
            if_then(self._row(t, "swapped"),
                    notice(ctx, f"{where} was already swapped to its new type"),
                    self._noop(t, "fill"), S("RETURN;")),
            if_then(S("{} OR NOT {}").format(relation_missing(t.table), column_exists(t.table, t.column)),
                    fail(ctx, f"cannot change the type of {where}: the table or column does not exist",
                         "Create it first, or remove this AlterColumnType.")),
            self._refusals(t),
            S("INSERT INTO {saved} (version, table_name, column_name, old_type, old_typid, old_typmod, new_type,"
              " method, old_not_null, swapped)\n"
              "SELECT {v}, {tn}, {cn}, pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypid, a.atttypmod,"
              " {new}, 'online', {nn}, false\n"
              "FROM pg_catalog.pg_attribute a WHERE a.attrelid = {rel} AND a.attname = {cn}\n"
              "ON CONFLICT (version, table_name, column_name) DO NOTHING;").format(
                saved=self._saved(), v=literal(ctx.version), tn=literal(t.table), cn=literal(t.column),
                new=literal(str(t.new_type)), nn=nn, rel=rel),
            S("ALTER TABLE {tbl} ADD COLUMN IF NOT EXISTS {s} {type};").format(
                tbl=qualified(t.table), s=ident(t.shadow), type=t.new_type.sql()),
            self._sync_trigger(t, t.shadow, self._conv(t, S("NEW.{}").format(ident(t.column))), S("true")),
            self._batch_function(t, "fill", t.shadow, self._conv(t, S("t.{}").format(ident(t.column))),
                                 S("t.{s} IS DISTINCT FROM {v}").format(
                                     s=ident(t.shadow), v=self._conv(t, S("t.{}").format(ident(t.column))))),
        )
        return Step("alter_type_prepare", t.table, "ACCESS EXCLUSIVE", True,
                    do_block(body, declare=["v_text text"]),
                    f"add shadow column {t.shadow} ({t.new_type}) to {t.table}, with a trigger keeping it in sync")

    def backfill_step(self, t: Target, suffix: str) -> Step:
        return Step(f"alter_type_{'backfill' if suffix == 'fill' else 'restore'}", t.table, "ROW EXCLUSIVE", False,
                    batch_loop(call_batch_function(self._rel(t, suffix), "rows_copied"), self.batch_size),
                    f"{'fill the shadow' if suffix == 'fill' else 'convert back into the old'} column of "
                    f"{t.table}.{t.column} in batches")

    def not_null_steps(self, t: Target, column: str, when: str) -> list[Step]:
        """The NOT NULL proof on ``column`` (``t.shadow``) before a swap: ``when`` is ``forward`` (the
        column was NOT NULL and the swap has not run) or ``rollback`` (it was, and the swap has run)."""
        name = self._nn_check(t)
        rel = regclass(t.table)
        cond = S("(SELECT a.attnotnull FROM pg_catalog.pg_attribute a WHERE a.attrelid = {rel} AND a.attname = {c})"
                 " AND {row}").format(rel=rel, c=literal(t.column), row=self._row(t, "NOT swapped")) \
            if when == "forward" else S("{row} AND (SELECT s.old_not_null FROM {saved} s WHERE {w})").format(
                row=self._row(t, "swapped"), saved=self._saved(), w=self._where(t))
        exists = S("EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = {rel} AND conname = {n})").format(
            rel=rel, n=literal(name))
        add = block(if_then(S("{} IS NOT NULL AND {} AND NOT {}").format(rel, cond, exists), S(
            "ALTER TABLE {tbl} ADD CONSTRAINT {n} CHECK ({c} IS NOT NULL) NOT VALID;").format(
            tbl=qualified(t.table), n=ident(name), c=ident(column))))
        validate = if_then(S("{rel} IS NOT NULL AND EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE"
                             " conrelid = {rel}"
                             " AND conname = {n} AND NOT convalidated)").format(rel=rel, n=literal(name)),
                           S("ALTER TABLE {tbl} VALIDATE CONSTRAINT {n};").format(
                               tbl=qualified(t.table), n=ident(name)))
        return [Step("alter_type_not_null", t.table, "ACCESS EXCLUSIVE", True, do_block(add),
                     f"CHECK ({column} IS NOT NULL) NOT VALID on {t.table} (proves NOT NULL for the swap)"),
                Step("alter_type_validate_not_null", t.table, "SHARE UPDATE EXCLUSIVE", True, do_block(validate),
                     f"validate the NOT NULL proof of {t.table}.{column}")]

    # --- the swap --------------------------------------------------------------------------------------

    def _fk_condition(self) -> sql.Composable:
        parts = []
        for t in self.targets:
            rel, num = regclass(t.table), attnum(t.table, t.column)
            parts.append(S("(c.conrelid = {rel} AND {num} = ANY (c.conkey))").format(rel=rel, num=num))
            parts.append(S("(c.confrelid = {rel} AND {num} = ANY (c.confkey))").format(rel=rel, num=num))
        return S(" OR ").join(parts)

    def _swap_target(self, t: Target, forward: bool) -> sql.Composable:
        """PL/pgSQL swapping ``t.column`` and ``t.shadow`` (names, default, NOT NULL, sequences, keys,
        indexes, checks); ``forward`` False is the way back (the checks the forward added are dropped,
        the kept ones renamed back)."""
        ctx, tbl, rel = self.ctx, qualified(t.table), regclass(t.table)
        c, s = ident(t.column), ident(t.shadow)
        tmp = ident(derived_name(t.column, f"v{ctx.version}", suffix="tmp"))
        tbl_text = literal(render(tbl))
        num_c = attnum(t.table, t.column)
        parts: list[sql.Composable] = []
        if forward:
            parts.append(S(
                "v_names := '{{}}'; v_kept := '{{}}'; v_defs := '{{}}';\n"
                "FOR v_con IN SELECT co.conname::text AS name, pg_catalog.pg_get_constraintdef(co.oid) AS def\n"
                "    FROM pg_catalog.pg_constraint co WHERE co.conrelid = {rel} AND co.contype = 'c'\n"
                "    AND {num} = ANY (co.conkey) AND co.conname <> {nn} ORDER BY co.conname LOOP\n"
                "    v_names := pg_catalog.array_append(v_names, v_con.name);"
                " v_defs := pg_catalog.array_append(v_defs, v_con.def);\n"
                "    v_kept := pg_catalog.array_append(v_kept, pg_catalog.left(v_con.name, 40) || '_v' || {v}"
                 " || '_swap');\n"
                "    EXECUTE 'ALTER TABLE ' || {tt} || ' RENAME CONSTRAINT ' || pg_catalog.quote_ident(v_con.name)\n"
                "        || ' TO ' || pg_catalog.quote_ident(v_kept[pg_catalog.cardinality(v_kept)]);\n"
                "END LOOP;\n"
                "UPDATE {saved} SET check_names = v_names, check_kept = v_kept WHERE {w};").format(
                rel=rel, num=num_c, nn=literal(self._nn_check(t)), v=literal(ctx.version), tt=tbl_text,
                saved=self._saved(), w=self._where(t)))
        else:
            parts.append(S(
                "SELECT s.check_names, s.check_kept INTO v_names, v_kept FROM {saved} s WHERE {w};\n"
                "FOR v_i IN 1 .. COALESCE(pg_catalog.cardinality(v_names), 0) LOOP\n"
                "    EXECUTE 'ALTER TABLE ' || {tt} || ' DROP CONSTRAINT IF EXISTS ' ||"
                 " pg_catalog.quote_ident(v_names[v_i]);\n"
                "    EXECUTE 'ALTER TABLE ' || {tt} || ' RENAME CONSTRAINT ' || pg_catalog.quote_ident(v_kept[v_i])\n"
                "        || ' TO ' || pg_catalog.quote_ident(v_names[v_i]);\n"
                "END LOOP;").format(saved=self._saved(), w=self._where(t), tt=tbl_text))
        # default and NOT NULL of the column now in use (c), sequences it owns
        parts.append(S(
            "SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) INTO v_default FROM pg_catalog.pg_attrdef d\n"
            "    WHERE d.adrelid = {rel} AND d.adnum = {num};\n"
            "SELECT a.attnotnull INTO v_nn FROM pg_catalog.pg_attribute a WHERE a.attrelid = {rel} AND a.attnum"
             " = {num};\n"
            "SELECT pg_catalog.array_agg(d.objid::pg_catalog.regclass::pg_catalog.text) INTO v_seqs\n"
            "    FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class q ON q.oid = d.objid AND q.relkind = 'S'\n"
            "    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = {rel}\n"
            "    AND d.refobjsubid = {num} AND d.deptype = 'a';\n"
            "ALTER TABLE {tbl} ALTER COLUMN {c} DROP DEFAULT;").format(rel=rel, num=num_c, tbl=tbl, c=c))
        # primary key / unique constraints on the column: dropped here, re-attached with USING INDEX
        for moved in t.indexes:
            if moved.constraint:
                parts.append(S("ALTER TABLE {tbl} DROP CONSTRAINT IF EXISTS {n};").format(
                    tbl=tbl, n=ident(moved.index.resolved_name(t.table))))
        parts.append(if_then(S("v_nn"), S("ALTER TABLE {tbl} ALTER COLUMN {c} DROP NOT NULL;").format(tbl=tbl, c=c)))
        # plain indexes: exchange names (old → swap name, swap → original)
        schema = split_table(t.table)[0]
        for moved in t.indexes:
            if moved.constraint:
                continue
            orig, swap = moved.index.resolved_name(t.table), moved.swap.resolved_name(t.table)
            tmp_index = derived_name(orig, f"v{ctx.version}", suffix="tmp")
            parts.append(S("ALTER INDEX {o} RENAME TO {tmp};\nALTER INDEX {s} RENAME TO {on};\n"
                           "ALTER INDEX {tq} RENAME TO {sn};").format(
                o=ident(schema, orig), tmp=ident(tmp_index), s=ident(schema, swap), on=ident(orig),
                tq=ident(schema, tmp_index), sn=ident(swap)))
        # the columns
        parts.append(S("ALTER TABLE {tbl} RENAME COLUMN {c} TO {tmp};\nALTER TABLE {tbl} RENAME COLUMN {s} TO {c};\n"
                       "ALTER TABLE {tbl} RENAME COLUMN {tmp} TO {s};").format(tbl=tbl, c=c, s=s, tmp=tmp))
        parts.append(if_then(S("v_default IS NOT NULL"), S(
            "EXECUTE 'ALTER TABLE ' || {tt} || ' ALTER COLUMN ' || {qc} || ' SET DEFAULT ' || v_default;").format(
            tt=tbl_text, qc=literal(render(c)))))
        want_nn = S("v_nn") if forward else S("(SELECT s.old_not_null FROM {saved} s WHERE {w})").format(
            saved=self._saved(), w=self._where(t))
        parts.append(if_then(want_nn, S("ALTER TABLE {tbl} ALTER COLUMN {c} SET NOT NULL;").format(tbl=tbl, c=c)))
        parts.append(S("ALTER TABLE {tbl} DROP CONSTRAINT IF EXISTS {n};").format(tbl=tbl, n=ident(self._nn_check(t))))
        parts.append(S(
            "FOR v_i IN 1 .. COALESCE(pg_catalog.cardinality(v_seqs), 0) LOOP\n"
            "    EXECUTE 'ALTER SEQUENCE ' || v_seqs[v_i] || ' OWNED BY ' || {tt} || '.' || {qc};\n"
            # a serial's sequence takes the integer type of the column it now serves (AS bigint / back AS
            # integer; PostgreSQL moves its default limits with it: ALTER SEQUENCE, "AS data_type")
            "    SELECT a.atttypid INTO v_typid FROM pg_catalog.pg_attribute a WHERE a.attrelid = {rel}"
            " AND a.attname = {cn};\n"
            "    IF v_typid IN ('pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype,"
            " 'pg_catalog.int8'::pg_catalog.regtype)\n"
            "            AND (SELECT q.seqtypid FROM pg_catalog.pg_sequence q"
            " WHERE q.seqrelid = v_seqs[v_i]::pg_catalog.regclass) <> v_typid THEN\n"
            "        EXECUTE 'ALTER SEQUENCE ' || v_seqs[v_i] || ' AS ' || pg_catalog.format_type(v_typid, NULL);\n"
            "    END IF;\n"
            "END LOOP;").format(tt=tbl_text, qc=literal(render(c)), rel=rel, cn=literal(t.column)))
        for moved in t.indexes:
            if moved.constraint:
                kind = S("PRIMARY KEY") if moved.constraint == "p" else S("UNIQUE")
                parts.append(S("ALTER TABLE {tbl} ADD CONSTRAINT {n} {kind} USING INDEX {i};").format(
                    tbl=tbl, n=ident(moved.index.resolved_name(t.table)), kind=kind,
                    i=ident(moved.swap.resolved_name(t.table))))
        if forward:
            parts.append(S(
                "FOR v_i IN 1 .. COALESCE(pg_catalog.cardinality(v_names), 0) LOOP\n"
                "    EXECUTE 'ALTER TABLE ' || {tt} || ' ADD CONSTRAINT ' || pg_catalog.quote_ident(v_names[v_i])\n"
                "        || ' ' || v_defs[v_i] || ' NOT VALID';\n"
                "    v_ptables := pg_catalog.array_append(v_ptables, {tt}::text);"
                " v_pnames := pg_catalog.array_append(v_pnames, v_names[v_i]);\n"
                "END LOOP;").format(tt=tbl_text))
        parts.append(self._drop_helpers(t))
        parts.append(S("UPDATE {saved} SET swapped = {v} WHERE {w};").format(
            saved=self._saved(), v=literal(forward), w=self._where(t)))
        return block(*parts)

    def swap_step(self, forward: bool) -> Step:
        ctx, main = self.ctx, self.main
        where = f"{main.table}.{main.column}"
        done = self._row(main, "swapped" if not forward else "NOT swapped")
        body = block(
            if_then(S("NOT {}").format(done),
                    notice(ctx, f"{where}: nothing to swap" + (" back" if not forward else " (already swapped)")),
                    S("RETURN;")),
            S("v_ptables := '{}'; v_pnames := '{}'; v_ftables := '{}'; v_fnames := '{}'; v_fdefs := '{}';"),
            S("FOR v_con IN SELECT DISTINCT c.oid, c.conrelid::pg_catalog.regclass::pg_catalog.text AS tbl,"
              " c.conname::text AS name, pg_catalog.pg_get_constraintdef(c.oid) AS def\n"
              "    FROM pg_catalog.pg_constraint c WHERE c.contype = 'f' AND ({cond}) LOOP\n"
              "    v_ftables := pg_catalog.array_append(v_ftables, v_con.tbl);"
              " v_fnames := pg_catalog.array_append(v_fnames, v_con.name);"
              " v_fdefs := pg_catalog.array_append(v_fdefs, v_con.def);\n"
              "    EXECUTE 'ALTER TABLE ' || v_con.tbl || ' DROP CONSTRAINT ' || pg_catalog.quote_ident(v_con.name);\n"
              "END LOOP;").format(cond=self._fk_condition()),
            *(self._swap_target(t, forward) for t in self.targets),
            S("FOR v_i IN 1 .. pg_catalog.cardinality(v_fnames) LOOP\n"
              "    EXECUTE 'ALTER TABLE ' || v_ftables[v_i] || ' ADD CONSTRAINT ' ||"
               " pg_catalog.quote_ident(v_fnames[v_i])\n"
              "        || ' ' || v_fdefs[v_i] || ' NOT VALID';\n"
              "END LOOP;"),
            S("UPDATE {saved} SET pending_tables = v_ptables || v_ftables, pending_names = v_pnames || v_fnames"
              " WHERE {w};").format(saved=self._saved(), w=self._where(main)),
            *([] if forward else [S("ALTER TABLE {tbl} DROP COLUMN IF EXISTS {s};").format(
                tbl=qualified(t.table), s=ident(t.shadow)) for t in self.targets]),
            notice(ctx, f"swapped {where} " + ("to its new type" if forward else "back to its old type")),
        )
        declare = ["v_con record", "v_i integer", "v_names text[]", "v_kept text[]", "v_defs text[]",
                   "v_default text", "v_nn boolean", "v_seqs text[]", "v_ptables text[]", "v_pnames text[]",
                   "v_ftables text[]", "v_fnames text[]", "v_fdefs text[]", "v_typid oid"]
        return Step("alter_type_swap" if forward else "alter_type_swap_back", main.table, "ACCESS EXCLUSIVE", True,
                    do_block(body, declare=declare),
                    f"swap {where} and its shadow column" + ("" if forward else " back, drop the shadow column")
                    + " (one short transaction: names, default, NOT NULL, keys, indexes, checks, foreign keys)")

    def validate_step(self, forward: bool) -> Step:
        main = self.main
        body = block(
            if_then(S("NOT {}").format(self._row(main)), S("RETURN;")),
            S("SELECT s.pending_tables, s.pending_names INTO v_tables, v_names FROM {saved} s WHERE {w};").format(
                saved=self._saved(), w=self._where(main)),
            S("FOR v_i IN 1 .. COALESCE(pg_catalog.cardinality(v_names), 0) LOOP\n"
              "    IF EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conrelid ="
               " pg_catalog.to_regclass(v_tables[v_i])\n"
              "            AND c.conname = v_names[v_i] AND NOT c.convalidated) THEN\n"
              "        EXECUTE 'ALTER TABLE ' || v_tables[v_i] || ' VALIDATE CONSTRAINT ' ||"
               " pg_catalog.quote_ident(v_names[v_i]);\n"
              "    END IF;\n"
              "END LOOP;"),
            *([] if forward else [S("DELETE FROM {saved} WHERE {w};").format(saved=self._saved(), w=self._where(t))
                                  for t in self.targets]),
        )
        return Step("alter_type_validate", main.table, "SHARE UPDATE EXCLUSIVE", True,
                    do_block(body, declare=["v_tables text[]", "v_names text[]", "v_i integer"]),
                    "validate the foreign keys and checks the swap re-added NOT VALID")

    def forward(self) -> list[Step]:
        steps = [self.prepare_step(t) for t in self.targets]
        steps += [self.backfill_step(t, "fill") for t in self.targets]
        for t in self.targets:
            steps += self.not_null_steps(t, t.shadow, "forward")
        steps += self._index_steps()
        steps.append(self.swap_step(True))
        steps += self._index_steps(after_swap=True)
        steps.append(self.validate_step(True))
        return steps

    # --- rollback ----------------------------------------------------------------------------------

    def rollback_prepare_step(self, t: Target) -> Step:
        ctx, where = self.ctx, f"{t.table}.{t.column}"
        old_c = S("t.{}").format(ident(t.shadow))      # after the swap the old column is the shadow name
        new_c = S("t.{}").format(ident(t.column))
        stale = S("{conv} IS DISTINCT FROM {new}").format(conv=self._conv(t, old_c), new=new_c)
        body = block(
            if_then(S("NOT {}").format(self._row(t)),
                    notice(ctx, f"nothing to roll back for {where}"), self._noop(t, "back"), S("RETURN;")),
            if_then(self._row(t, "NOT swapped"),
                    # the forward stopped before its swap: drop what it added (the shadow column's indexes go with it)
                    self._drop_helpers(t), drop_batch_function(self._rel(t, "fill")),
                    S("ALTER TABLE {tbl} DROP CONSTRAINT IF EXISTS {n};").format(
                        tbl=qualified(t.table), n=ident(self._nn_check(t))),
                    S("ALTER TABLE {tbl} DROP COLUMN IF EXISTS {s};").format(tbl=qualified(t.table), s=ident(t.shadow)),
                    S("DELETE FROM {saved} WHERE {w};").format(saved=self._saved(), w=self._where(t)),
                    notice(ctx, f"removed the unfinished shadow column of {where}"), self._noop(t, "back"),
                    S("RETURN;")),
            drop_batch_function(self._rel(t, "fill")),
            self._sync_trigger(t, t.shadow, self._back(t, S("NEW.{}").format(ident(t.column))),
                               S("TG_OP = 'INSERT' OR NEW.{c} IS DISTINCT FROM OLD.{c}").format(c=ident(t.column))),
            self._batch_function(t, "back", t.shadow, self._back(t, new_c), stale),
        )
        return Step("alter_type_rollback_prepare", t.table, "ACCESS EXCLUSIVE", True, do_block(body),
                    f"trigger converting new writes of {where} back into the kept old column")

    def misfits(self, t: Target) -> sql.Composable:
        """PL/pgSQL (preflight): ``v_count`` := rows changed since the swap whose value does not fit the old
        type."""
        tbl, new_c, old_c = qualified(t.table), S("t.{}").format(ident(t.column)), S("t.{}").format(ident(t.shadow))
        changed = S("{conv} IS DISTINCT FROM {new}").format(conv=self._conv(t, old_c), new=new_c)
        if t.old_shape in _INT_RANGES:
            low, high = _INT_RANGES[t.old_shape]
            return S("SELECT pg_catalog.count(*) INTO v_count FROM {tbl} AS t WHERE {new} NOT BETWEEN {lo} AND {hi}"
                     " AND {changed};").format(tbl=tbl, new=new_c, lo=literal(low), hi=literal(high), changed=changed)
        return S(
            "v_count := 0;\n"
            "FOR v_dependants IN SELECT {new}::pg_catalog.text FROM {tbl} AS t WHERE {new} IS NOT NULL AND {changed}"
            " LOOP\n"
            "    BEGIN\n        PERFORM CAST(CAST(v_dependants AS {newtype}) AS {oldtype});\n"
            "    EXCEPTION WHEN OTHERS THEN\n        v_count := v_count + 1;\n    END;\n"
            "END LOOP;").format(new=new_c, tbl=tbl, changed=changed, newtype=t.new_type.sql(),
                                oldtype=t.old_type.sql())

    def rollback_preflight(self) -> list[sql.Composable]:
        ctx, checks = self.ctx, []
        for t in self.targets:
            where = f"{t.table}.{t.column}"
            swapped = S("{row} AND {exists}").format(row=self._row(t, "swapped"),
                                                     exists=S("{} IS NOT NULL").format(regclass(t.table)))
            checks.append(if_then(
                S("{swapped} AND NOT {col}").format(swapped=swapped, col=column_exists(t.table, t.shadow)),
                fail(ctx, f"the old column of {where} (kept as {t.shadow} for this rollback) is gone; cannot go back",
                     "Restore the kept column from a backup, or keep this version.")))
            checks.append(if_then(
                S("{swapped} AND {col}").format(swapped=swapped, col=column_exists(t.table, t.shadow)),
                self.misfits(t),
                if_then(S("v_count > 0"), fail(
                    ctx, f"values written to {where} since the deploy do not fit its old type {t.old_type}; rows:",
                    "Change or delete those rows (or keep this version), then run the rollback again.",
                    detail=S("v_count")))))
        return checks

    def rollback(self) -> list[Step]:
        steps = [self.rollback_prepare_step(t) for t in self.targets]
        steps += [self.backfill_step(t, "back") for t in self.targets]
        for t in self.targets:
            steps += self.not_null_steps(t, t.shadow, "rollback")
        # No index builds: the forward built every index the swap back takes (on the kept old column), and
        # after the swap back the shadow column they would name is gone (a re-run must not fail on it).
        steps.append(self.swap_step(False))
        steps.append(self.validate_step(False))
        return steps


__all__ = ["MovedIndex", "OnlinePlan", "Target", "create_saved_types_table", "saved_types_table", "shadow_name",
           "swap_index"]
