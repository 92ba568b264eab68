"""Batched, restartable, reversible data updates (never ``UPDATE … LIMIT``, which does not exist).

A backfill walks the table in key order, each batch one statement and one transaction of at most
``batch_size`` rows — as many as take about ``batch_time`` (the loop sets ``dbdeploy.batch_rows``
before each batch, halving it after a batch that took longer, doubling it after one that took less
than a quarter of it; :mod:`dbdeploy.ops.batches`):

- ``batch`` locks the next rows (``FOR UPDATE``) and reads their current values;
- ``changed`` applies the new values to rows matching ``where`` and returns, from the same
  statement, each row's key, its value before (read by ``batch``) and the value written;
- ``saved`` copies those into a backup table (the first old value wins, so a re-run never replaces
  an original value with an already-backfilled one; the value written is the latest);
- ``moved`` advances a one-row cursor table to the first key after the batch.

Because the cursor commits with the batch, a killed run resumes at the first row not yet done,
and a finished backfill (cursor NULL) does nothing on a re-run. The same batch statement is run
by the PL/pgSQL loop below (psql) and, between its markers, by the dbdeploy executor.

The rollback restores a saved value only where the row still holds the value the backfill wrote:
a row the application changed after the deploy keeps the application's value, and its key, the
value before the deploy, the value the backfill wrote and the current value are recorded in a
``…_not_restored`` table next to the backup. It runs in batches of at most ``batch_size`` backup rows
in key order, sized by time like the forward's, one transaction per batch, resumable at its own
cursor table like the forward (see :meth:`BackfillPlan.restore_steps`); only a backup made by an
older dbdeploy, without the values written, is restored in one statement.
"""

from __future__ import annotations

from psycopg import sql

from dbdeploy.bundle.markers import BATCH_BEGIN, BATCH_END  # noqa: E402
from dbdeploy.bundle.step import Step
from dbdeploy.model.names import derived_name, split_table
from dbdeploy.ops.base import PlanContext
from dbdeploy.ops.batches import (
    BATCH_ROWS,
    ROWS_PARAMETER,
    batch_loop,
    call_batch_function,
    create_batch_function,
    cursor_table,
    drop_batch_function,
    noop_batch_function,
)
from dbdeploy.ops.common import (
    NOT_NULL_PROVEN,
    S,
    backup_table,
    copy_to_timestamped_backup,
    fail,
    notice,
    regclass,
    relation_exists,
    relation_missing,
    rollback_backup_prefix,
)
from dbdeploy.sql import Expression, acl, ident, literal, qualified, render
from dbdeploy.sql.blocks import block, do_block, if_then, indented


def _proving_index(column_ok: sql.Composable) -> sql.Composable:
    """Condition on ``pg_index x``: a valid, non-partial unique index on plain columns (no
    expression) whose every key column ``a`` (``pg_attribute``; INCLUDE columns do not count) is
    indexed with its type's default operator class and its own collation — so the index's equality
    is the ``=`` the batches and the restore join on — and satisfies ``column_ok``."""
    return S(
        "x.indisunique AND x.indisvalid AND x.indpred IS NULL AND x.indexprs IS NULL"
        " AND NOT EXISTS (SELECT 1"
        " FROM pg_catalog.unnest(x.indkey::pg_catalog.int2[]) WITH ORDINALITY AS i(attnum, ord)"
        " LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = i.attnum"
        " LEFT JOIN pg_catalog.pg_opclass o ON o.oid = x.indclass[i.ord - 1]"
        " WHERE i.ord <= x.indnkeyatts AND NOT COALESCE(o.opcdefault AND x.indcollation[i.ord - 1] = a.attcollation"
        " AND ({ok}), false))").format(ok=column_ok)


def key_refusal(ctx: PlanContext, table: str, key: list[str], *, when: sql.Composable, message: str,
                hint: str, fix: sql.Composable) -> sql.Composable:
    """A PL/pgSQL block that, when ``when`` holds, raises ``message`` followed by the reason and
    ``fix`` (a text expression) unless the catalog proves that ``key`` identifies the rows of
    ``table``. Read-only; changes nothing.

    Proven means: every key column exists and is NOT NULL (``pg_attribute.attnotnull`` and no NOT
    VALID not-null constraint, :data:`NOT_NULL_PROVEN`; a primary
    key's columns are), the table has no inheritance children (its indexes do not cover them), and a
    valid, non-partial unique index without expressions — a primary key, a unique constraint's index
    or a plain unique index — has key columns that are all among ``key``, in any order
    (:func:`_proving_index`). An index on a subset proves the whole key unique; one with a column
    outside the key proves nothing about the key. Sources: PostgreSQL docs, ``pg_index``
    (indisunique, indisvalid, indpred, indexprs, indnkeyatts, indclass, indcollation) and
    ``pg_attribute`` (attnotnull).
    """
    rel = regclass(table)
    columns = S("FROM pg_catalog.unnest(v_key_columns) WITH ORDINALITY AS k(name, ord)")
    attribute = S("a.attrelid = {rel} AND a.attname::text = k.name AND a.attnum > 0 AND NOT a.attisdropped").format(
        rel=rel)
    body = block(
        S("SELECT pg_catalog.string_agg(k.name, ', ' ORDER BY k.ord) INTO v_key_problem {cols}"
          " WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE {att});").format(
            cols=columns, att=attribute),
        S("IF v_key_problem IS NOT NULL THEN\n"
          "    v_key_problem := 'the table has no column(s) ' || v_key_problem;\n"
          "ELSE\n"
          "    SELECT pg_catalog.string_agg(k.name, ', ' ORDER BY k.ord) INTO v_key_problem {cols}\n"
          "        JOIN pg_catalog.pg_attribute a ON {att} WHERE NOT ({not_null});\n"
          "    IF v_key_problem IS NOT NULL THEN\n"
          "        v_key_problem := 'column(s) ' || v_key_problem || {null_why};\n"
          "    ELSIF EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h JOIN pg_catalog.pg_class c ON c.oid = h.inhparent\n"
          "                  WHERE h.inhparent = {rel} AND c.relkind = 'r') THEN\n"
          "        v_key_problem := {children_why};\n"
          "    ELSIF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index x WHERE x.indrelid = {rel}\n"
          "                      AND {proving}) THEN\n"
          "        v_key_problem := {unique_why};\n"
          "    END IF;\n"
          "END IF;").format(
            cols=columns, att=attribute, rel=rel, not_null=NOT_NULL_PROVEN,
            proving=_proving_index(S("a.attname::text = ANY (v_key_columns)")),
            null_why=literal(" allow NULL: rows whose key is NULL are never reached by the key-ordered batches "
                             "(the backfill would skip them and report completion)"),
            children_why=literal(f"{table} has inheritance child tables, which its unique indexes do not cover"),
            unique_why=literal(f"no valid unique index or primary key of {table} has only key columns, so several "
                               "rows may share a key: the batches would rewrite them again and again and the "
                               "rollback would write one saved value into all of them (a partial unique index, one "
                               "on an expression or with a column outside the key, non-default operator class or "
                               "collation, and an INVALID one left by a failed concurrent build do not count)")),
        if_then(S("v_key_problem IS NOT NULL"),
                fail(ctx, message, hint, detail=S("v_key_problem || {}").format(fix))),
    )
    return S("DECLARE\n    v_key_columns text[] := {keys};\n    v_key_problem text;\nBEGIN\n{body}\nEND;").format(
        keys=S("ARRAY[{}]::pg_catalog.text[]").format(S(", ").join(literal(k) for k in key)),
        body=indented(if_then(when, body)))   # by the lexer: no literal changes


def key_is_proven(table: str, key: list[str]) -> sql.Composable:
    """SQL boolean: what :func:`key_refusal` checks, as one expression (for the checklist)."""
    rel = regclass(table)
    keys = S("ARRAY[{}]::pg_catalog.text[]").format(S(", ").join(literal(k) for k in key))
    return S(
        "NOT EXISTS (SELECT 1 FROM pg_catalog.unnest({keys}) AS k(name) WHERE NOT EXISTS (SELECT 1"
        " FROM pg_catalog.pg_attribute a WHERE a.attrelid = {rel} AND a.attname::text = k.name AND a.attnum > 0"
        " AND NOT a.attisdropped AND {not_null}))\n"
        "    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h JOIN pg_catalog.pg_class c ON c.oid = h.inhparent"
        " WHERE h.inhparent = {rel} AND c.relkind = 'r')\n"
        "    AND EXISTS (SELECT 1 FROM pg_catalog.pg_index x WHERE x.indrelid = {rel} AND {proving})").format(
        keys=keys, rel=rel, not_null=NOT_NULL_PROVEN,
        proving=_proving_index(S("a.attname::text = ANY ({})").format(keys)))


def qualifying_keys(table: str) -> sql.Composable:
    """SQL text expression: the column lists of ``table``'s unique indexes that a backfill may use as
    its key (valid, non-partial, no expressions, every column NOT NULL), primary key first, e.g.
    ``(id), (tenant_id, code)``; NULL when there is none."""
    return S(
        "(SELECT pg_catalog.string_agg(q.cols, ', ' ORDER BY q.prim DESC, q.cols) FROM ("
        "SELECT x.indisprimary AS prim, '(' || (SELECT pg_catalog.string_agg(a.attname::text, ', ' ORDER BY i.ord)"
        " FROM pg_catalog.unnest(x.indkey::pg_catalog.int2[]) WITH ORDINALITY AS i(attnum, ord)"
        " JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = i.attnum"
        " WHERE i.ord <= x.indnkeyatts) || ')' AS cols"
        " FROM pg_catalog.pg_index x WHERE x.indrelid = {rel} AND {ok}) AS q)").format(
        rel=regclass(table), ok=_proving_index(NOT_NULL_PROVEN))


class BackfillPlan:
    """Names and SQL of one backfill."""

    def __init__(self, ctx: PlanContext, table: str, assignments: dict[str, Expression], where: sql.Composable | None,
                 key: list[str], batch_size: int, keep_old: bool, tag: str) -> None:
        self.ctx = ctx
        self.table = table
        self.assignments = assignments
        self.where = where
        self.key = key
        self.batch_size = batch_size
        self.keep_old = keep_old
        base = derived_name(f"v{ctx.version}", tag, split_table(table)[1])
        self.backup_name = base
        self.progress_name = derived_name(base, suffix="progress")
        self.not_restored_name = derived_name(base, suffix="not_restored")
        self.restore_name = derived_name(base, suffix="restore")
        self.restore_fn_name = derived_name(base, suffix="restore_batch")
        # Backup columns holding the value the backfill wrote (compared with the row at rollback).
        self.written = {c: derived_name("dbdeploy_written", c) for c in assignments}
        taken = {*key, *assignments}
        clash = sorted(n for n in self.written.values() if n in taken)
        if keep_old and clash:
            raise ValueError(f"column name(s) {', '.join(clash)} are reserved for the backfill's backup table — "
                             "fix: rename the column(s), or use RawSQL")

    @property
    def backup(self) -> sql.Identifier:
        return backup_table(self.ctx, self.backup_name)

    @property
    def progress(self) -> sql.Identifier:
        return backup_table(self.ctx, self.progress_name)

    @property
    def not_restored(self) -> sql.Identifier:
        return backup_table(self.ctx, self.not_restored_name)

    @property
    def restore_cursor(self) -> sql.Identifier:
        """The rollback's cursor table: the first backup key not yet restored and the counts so far."""
        return backup_table(self.ctx, self.restore_name)

    @property
    def restore_function(self) -> sql.Identifier:
        """The rollback's batch function (backup schema), called once per batch."""
        return backup_table(self.ctx, self.restore_fn_name)

    def _key_cols(self, alias: str | None = None) -> sql.Composable:
        return S(", ").join(ident(alias, k) if alias else ident(k) for k in self.key)

    def _cursor_compare(self) -> sql.Composable:
        left = S("({})").format(self._key_cols("t"))
        right = S(", ").join(S("(SELECT p.{k} FROM {prog} AS p)").format(k=ident(k), prog=self.progress)
                             for k in self.key)
        return S("{} >= ({})").format(left, right)

    def key_check(self) -> sql.Composable:
        """PL/pgSQL run before the first batch: stop, changing nothing, unless the catalog proves
        that the key identifies rows (:func:`key_refusal`)."""
        cols = ", ".join(self.key)
        fix = S("{} || COALESCE({}, 'none') || {}").format(
            literal(" - fix: batch by a key that is unique and NOT NULL (key=[...] in the spec; keys of "
                    f"{self.table} that qualify: "),
            qualifying_keys(self.table),
            literal(f"), or create a unique index on ({cols}) (CREATE UNIQUE INDEX CONCURRENTLY ...) and make the "
                    "column(s) NOT NULL; then run the migration again"))
        return key_refusal(
            self.ctx, self.table, self.key, when=relation_exists(self.table),
            message=f"the backfill of {self.table} cannot batch by key ({cols}):",
            hint="Nothing was changed by this step. A backfill walks the table in key order and saves each "
                 "overwritten value under its key, so the key must be unique and NOT NULL.", fix=fix)

    def restore_key_check(self) -> sql.Composable:
        """Rollback (its preflight, and the restore step right before it writes): refuse while the
        restore could not tell rows apart by the key (the unique index was dropped or made invalid,
        a key column made nullable since the deploy)."""
        cols = ", ".join(self.key)
        saved = f"{self.ctx.backup_schema}.{self.backup_name}"
        return key_refusal(
            self.ctx, self.table, self.key,
            when=S("{} AND {}").format(relation_exists(self.table), relation_exists(saved)),
            message=f"cannot restore the values the backfill of {self.table} overwrote by key ({cols}):",
            hint=f"The saved values are kept in {saved}.",
            fix=literal(f" - fix: make ({cols}) unique and NOT NULL again (CREATE UNIQUE INDEX CONCURRENTLY ... and "
                        "ALTER TABLE ... ALTER COLUMN ... SET NOT NULL), then run the rollback again; or restore the "
                        f"values by hand from {saved}"))

    def setup_step(self) -> Step:
        columns = list(self.assignments)
        statements: list[sql.Composable] = []
        if self.keep_old:
            statements += [
                S("CREATE TABLE {b} AS SELECT {cols} FROM {t} WITH NO DATA;").format(
                    b=self.backup, t=qualified(self.table), cols=S(", ").join(
                        [*(ident(c) for c in [*self.key, *columns]),
                         *(S("{} AS {}").format(ident(c), ident(self.written[c])) for c in columns)])),
                S("ALTER TABLE {b} ADD PRIMARY KEY ({k});").format(b=self.backup, k=self._key_cols()),
                acl.restrict_table(self.backup),
            ]
        statements += [
            *cursor_table(self.progress, ["dbdeploy_rows_done", "dbdeploy_batches_done"], create=S(
                "CREATE TABLE {p} AS SELECT {k} FROM {t} ORDER BY {k} LIMIT 1;").format(
                p=self.progress, k=self._key_cols(), t=qualified(self.table))),
        ]
        body = block(self.key_check(),
                     if_then(relation_missing(f"{self.ctx.backup_schema}.{self.progress_name}"), *statements))
        what = "with a copy of the values it overwrites" if self.keep_old else ""
        return Step("backfill_setup", self.table, "ACCESS SHARE", True, do_block(body),
                    f"prepare the backfill of {self.table} {what}".strip())

    def batch_statement(self) -> sql.Composable:
        """One batch of the forward (see the module docstring): at most ``dbdeploy.batch_rows`` rows
        (:data:`dbdeploy.ops.batches.BATCH_ROWS`, set by the loop before each batch) from the cursor."""
        n = BATCH_ROWS
        key_aliases = [f"dbdeploy_key_{i + 1}" for i in range(len(self.key))]
        old_aliases = [f"dbdeploy_old_{i + 1}" for i in range(len(self.assignments))]
        predicate = self.where if self.where is not None else S("true")
        select_cols = [S("t.{} AS {}").format(ident(k), ident(a)) for k, a in zip(self.key, key_aliases, strict=True)]
        if self.keep_old:
            select_cols += [S("t.{} AS {}").format(ident(c), ident(a))
                            for c, a in zip(self.assignments, old_aliases, strict=True)]
        select_cols.append(S("({}) AS dbdeploy_match").format(predicate))
        join_on = S(" AND ").join(S("t.{} = batch.{}").format(ident(k), ident(a))
                                 for k, a in zip(self.key, key_aliases, strict=True))
        ctes = [
            S("batch AS (\n    SELECT {cols}\n    FROM {t} AS t\n    WHERE {cursor}\n"
              "    ORDER BY {order}\n    LIMIT {n}\n    FOR UPDATE OF t\n)").format(
                cols=S(", ").join(select_cols), t=qualified(self.table), cursor=self._cursor_compare(),
                order=self._key_cols("t"), n=n),
            S("next_key AS (\n    SELECT {keys}\n    FROM {t} AS t\n    WHERE {cursor}\n"
              "    ORDER BY {order}\n    OFFSET {n} LIMIT 1\n)").format(
                keys=self._key_cols("t"), t=qualified(self.table), cursor=self._cursor_compare(),
                order=self._key_cols("t"), n=n),
        ]
        sets = S(", ").join(S("{} = {}").format(ident(c), e.sql()) for c, e in self.assignments.items())
        if self.keep_old:
            # The UPDATE returns what the backup needs: the key, the value before (from ``batch``)
            # and the value written; no second read of the table.
            new_aliases = [f"dbdeploy_new_{i + 1}" for i in range(len(self.assignments))]
            returning = S(", ").join([
                *(S("t.{} AS {}").format(ident(k), ident(a)) for k, a in zip(self.key, key_aliases, strict=True)),
                *(S("batch.{}").format(ident(a)) for a in old_aliases),
                *(S("t.{} AS {}").format(ident(c), ident(a))
                  for c, a in zip(self.assignments, new_aliases, strict=True))])
        else:
            returning = S("1")
        ctes.append(S(
            "changed AS (\n    UPDATE {t} AS t SET {sets}\n    FROM batch\n"
            "    WHERE {join} AND batch.dbdeploy_match\n    RETURNING {returning}\n)").format(
            t=qualified(self.table), sets=sets, join=join_on, returning=returning))
        if self.keep_old:
            written = [self.written[c] for c in self.assignments]
            ctes.append(S(
                "saved AS (\n    INSERT INTO {b} ({cols})\n    SELECT {src} FROM changed\n"
                "    ON CONFLICT ({k}) DO UPDATE SET {latest}\n)").format(
                b=self.backup, cols=S(", ").join(ident(c) for c in [*self.key, *self.assignments, *written]),
                src=S(", ").join(ident(a) for a in [*key_aliases, *old_aliases, *new_aliases]), k=self._key_cols(),
                latest=S(", ").join(S("{w} = EXCLUDED.{w}").format(w=ident(w)) for w in written)))
        ctes.append(S(
            "moved AS (\n    UPDATE {p} SET ({k}) = (SELECT {nk} FROM next_key),\n"
            "        dbdeploy_rows_done = dbdeploy_rows_done + (SELECT count(*) FROM changed),\n"
            "        dbdeploy_batches_done = dbdeploy_batches_done + 1\n"
            "    WHERE EXISTS (SELECT 1 FROM batch)\n)").format(
            p=self.progress, k=self._key_cols(),
            nk=S(", ").join(S("next_key.{}").format(ident(k)) for k in self.key)
            if len(self.key) > 1 else S("next_key.{}").format(ident(self.key[0]))))
        query = S("WITH {ctes}\nSELECT (SELECT count(*) FROM batch) AS rows_seen,"
                  " (SELECT count(*) FROM changed) AS rows_changed").format(ctes=S(",\n").join(ctes))
        return query

    def run_step(self) -> Step:
        """The forward's batch step (no transaction, ROW EXCLUSIVE): :meth:`batch_statement` in the
        shared batch loop (:func:`dbdeploy.ops.batches.batch_loop`)."""
        return Step("backfill", self.table, "ROW EXCLUSIVE", False,
                    batch_loop(self.batch_statement(), self.batch_size),
                    f"backfill {', '.join(self.assignments)} of {self.table} in batches of {self.batch_size} rows at "
                    "most, each sized to take about batch_time")

    def _differs(self, left: str, right: dict[str, str]) -> sql.Composable:
        """True when any backfilled column of row ``left`` is not the value in ``right`` (backup
        columns). Compared as text in the "C" collation: works for every type (json has no ``=``)
        and never calls two different values equal (a case-insensitive collation would)."""
        return S(" OR ").join(
            S("({l}.{c}::text COLLATE pg_catalog.\"C\") IS DISTINCT FROM (b.{w}::text COLLATE pg_catalog.\"C\")"
              ).format(l=ident(left), c=ident(c), w=ident(right[c])) for c in self.assignments)

    def _restore_batch_query(self) -> sql.Composable:
        """One batch of the rollback's restore (the body of :attr:`restore_function`): the next
        ``p_rows`` (its parameter, at most ``batch_size``) backup rows in key order from the cursor
        (:attr:`restore_cursor`).

        ``restored`` puts the saved values back in the rows of the batch that still hold what the
        backfill wrote (``NOT differs``); ``kept`` appends every other backed-up row of the batch
        that still exists, as it is now, to ``<backup>_not_restored``; ``moved`` advances the cursor
        to the first key after the batch and adds the counts, committing with the batch. Returns
        ``(rows_seen, rows_restored)``; ``rows_seen`` is 0 once the cursor is past the last key.
        Row locks: only the rows of the batch that are restored, until the batch commits."""
        t, b, kept, cur = qualified(self.table), self.backup, self.not_restored, self.restore_cursor
        cols = list(self.assignments)
        current = [derived_name("dbdeploy_current", c) for c in cols]
        backup_cols = [*self.key, *cols, *(self.written[c] for c in cols)]
        key_join = S(" AND ").join(S("t.{k} = b.{k}").format(k=ident(k)) for k in self.key)
        b_keys = S(", ").join(S("b.{}").format(ident(k)) for k in self.key)
        cursor = S(", ").join(S("(SELECT p.{k} FROM {cur} AS p)").format(k=ident(k), cur=cur) for k in self.key)
        after = S("({keys}) >= ({cursor})").format(keys=b_keys, cursor=cursor)
        # The same bound on the table (always true for a batch row's key): a merge join on the key
        # then starts its index scan at the cursor instead of reading every earlier key per batch.
        t_after = S("({keys}) >= ({cursor})").format(
            keys=S(", ").join(S("t.{}").format(ident(k)) for k in self.key), cursor=cursor)
        next_key = S(", ").join(S("next_key.{}").format(ident(k)) for k in self.key)
        return S(
            "WITH batch AS (\n"
            "    SELECT {bcols} FROM {b} AS b\n"
            "    WHERE {after}\n"
            "    ORDER BY {bkeys}\n"
            "    LIMIT {n}\n"
            "), next_key AS (\n"
            "    SELECT {bkeys} FROM {b} AS b\n"
            "    WHERE {after}\n"
            "    ORDER BY {bkeys}\n"
            "    OFFSET {n} LIMIT 1\n"
            "), restored AS (\n"
            "    UPDATE {t} AS t SET {sets} FROM batch AS b\n"
            "    WHERE {join} AND {t_after} AND NOT ({differs})\n"
            "    RETURNING {tkeys}\n"
            "), kept AS (\n"
            "    INSERT INTO {kept} ({kcols})\n"
            "    SELECT {bcols}, {tcols}, pg_catalog.now()\n"
            "    FROM batch AS b JOIN {t} AS t ON {join}\n"
            "    WHERE {t_after} AND NOT EXISTS (SELECT 1 FROM restored AS r WHERE ({rkeys}) = ({bkeys}))\n"
            "    RETURNING 1\n"
            "), moved AS (\n"
            "    UPDATE {cur} SET ({keys}) = (SELECT {next_key} FROM next_key),\n"
            "        dbdeploy_rows_restored = dbdeploy_rows_restored + (SELECT pg_catalog.count(*) FROM restored),\n"
            "        dbdeploy_rows_kept = dbdeploy_rows_kept + (SELECT pg_catalog.count(*) FROM kept),\n"
            "        dbdeploy_batches_done = dbdeploy_batches_done + 1\n"
            "    WHERE EXISTS (SELECT 1 FROM batch)\n"
            ")\n"
            "SELECT (SELECT pg_catalog.count(*) FROM batch), (SELECT pg_catalog.count(*) FROM restored)").format(
            t=t, b=b, kept=kept, cur=cur, after=after, t_after=t_after, bkeys=b_keys, n=ROWS_PARAMETER,
            sets=S(", ").join(S("{c} = b.{c}").format(c=ident(c)) for c in cols), join=key_join,
            differs=self._differs("t", self.written),
            tkeys=S(", ").join(S("t.{}").format(ident(k)) for k in self.key),
            kcols=S(", ").join(ident(c) for c in [*backup_cols, *current, "dbdeploy_rolled_back_at"]),
            bcols=S(", ").join(S("b.{}").format(ident(c)) for c in backup_cols),
            tcols=S(", ").join(S("t.{}").format(ident(c)) for c in cols),
            rkeys=S(", ").join(S("r.{}").format(ident(k)) for k in self.key),
            keys=self._key_cols(), next_key=next_key)

    def _restore_prepare(self) -> sql.Composable:
        """PL/pgSQL: create the ``_not_restored`` table, the restore cursor (first backup key, counts
        0) and the batch function, unless an earlier run of the rollback created the cursor (then the
        restore continues at it; the function is created again)."""
        t, b, kept, cur = qualified(self.table), self.backup, self.not_restored, self.restore_cursor
        cols = list(self.assignments)
        current = [derived_name("dbdeploy_current", c) for c in cols]
        backup_cols = [*self.key, *cols, *(self.written[c] for c in cols)]
        key_join = S(" AND ").join(S("t.{k} = b.{k}").format(k=ident(k)) for k in self.key)
        start = block(
            S("CREATE TABLE IF NOT EXISTS {kept} AS SELECT {bcols}, {now}, pg_catalog.now() AS dbdeploy_rolled_back_at"
              " FROM {b} AS b JOIN {t} AS t ON {join} WITH NO DATA;").format(
                kept=kept, b=b, t=t, join=key_join,
                bcols=S(", ").join(S("b.{}").format(ident(c)) for c in backup_cols),
                now=S(", ").join(S("t.{} AS {}").format(ident(c), ident(n))
                                 for c, n in zip(cols, current, strict=True))),
            acl.restrict_table(kept),
            *cursor_table(cur, ["dbdeploy_rows_restored", "dbdeploy_rows_kept", "dbdeploy_batches_done"],
                          create=S("CREATE TABLE {cur} AS SELECT {k} FROM {b} ORDER BY {k} LIMIT 1;").format(
                              cur=cur, k=self._key_cols(), b=b)),
            # Statistics for the batches' reads of the backup (filled by the forward, maybe never analyzed).
            S("ANALYZE {};").format(b),
            notice(self.ctx, f"backfill of {self.table}: restoring the values before the deploy in batches of "
                             f"at most {self.batch_size} rows (cursor {self.ctx.backup_schema}.{self.restore_name})"))
        return block(
            if_then(relation_missing(f"{self.ctx.backup_schema}.{self.restore_name}"), start, otherwise=[
                notice(self.ctx, f"backfill of {self.table}: the restore was started by an earlier run; continuing "
                                 f"at its cursor ({self.ctx.backup_schema}.{self.restore_name})")]),
            create_batch_function(self.restore_function, "rows_restored", "sql", self._restore_batch_query()))

    def _restore_legacy(self) -> sql.Composable:
        """PL/pgSQL for a backup made without the written values (by an older dbdeploy): it cannot
        tell changed rows apart, so every backed-up row's current values are copied to a timestamped
        table first, then all saved values are put back in ONE statement (holding the row locks of
        every backed-up row until it commits; such backups are rare) and the backup is dropped in the
        same transaction, so a re-run cannot restore twice."""
        label, table = self.ctx.label, self.table
        t, b = qualified(table), self.backup
        cols = list(self.assignments)
        key_join = S(" AND ").join(S("t.{k} = b.{k}").format(k=ident(k)) for k in self.key)
        sets = S(", ").join(S("{c} = b.{c}").format(c=ident(c)) for c in cols)
        return block(
            copy_to_timestamped_backup(
                self.ctx, f"{split_table(table)[1]}_current",
                S("SELECT {tk}, {tc} FROM {t} AS t JOIN {b} AS b ON {join}").format(
                    tk=S(", ").join(S("t.{}").format(ident(k)) for k in self.key),
                    tc=S(", ").join(S("t.{}").format(ident(c)) for c in cols), t=t, b=b, join=key_join),
                f"the current values of every row the backfill of {table} changed", count_into="v_total"),
            S("UPDATE {t} AS t SET {sets} FROM {b} AS b WHERE {join};").format(t=t, sets=sets, b=b, join=key_join),
            S("GET DIAGNOSTICS v_restored = ROW_COUNT;"),
            S("RAISE NOTICE '%', {msg} || v_restored || ' row(s)';").format(msg=sql.Literal(
                f"dbdeploy {label}: backfill of {table}: restored the values before the deploy in ")),
            S("DROP TABLE {};").format(b))

    def _has_written(self) -> sql.Composable:
        """SQL boolean: the backup has the columns holding the values the backfill wrote."""
        b = self.backup
        return S(" AND ").join(
            S("EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = {b}"
              " AND attname = {w} AND NOT attisdropped)").format(b=regclass(b),
                                                                 w=sql.Literal(self.written[c]))
            for c in self.assignments)

    def restore_setup_step(self, columns_dropped_later: sql.Composable | None = None) -> Step:
        """Rollback, first step (one transaction): decide how the saved values go back.

        With the table and the backup present: :meth:`restore_key_check` (checked here, right
        before the writes: the preflight leaves it to this step when a later operation's rollback,
        run before this one, may rebuild what the key needs); then, for a backup holding the values
        the backfill wrote, create the cursor table, ``<backup>_not_restored`` and the batch function
        (:meth:`_restore_prepare`) — the next step restores in batches; for a backup by an older
        dbdeploy, restore in one statement here (:meth:`_restore_legacy`). When
        ``columns_dropped_later`` holds at run time (the rollback drops every backfilled column
        afterwards), nothing is restored: the backup is renamed (timestamped) so which values the
        backfill wrote stays known. A batch function that reports nothing to do is created whenever
        there is nothing to restore in batches, so the next step runs under psql and the executor.
        """
        t, b, fn = qualified(self.table), self.backup, self.restore_function
        restore = block(
            # Checked again here, right before the writes (see the docstring).
            self.restore_key_check(),
            if_then(self._has_written(), self._restore_prepare(), otherwise=[self._restore_legacy()]))
        restore = if_then(S("{} IS NOT NULL").format(regclass(t)), restore)
        if columns_dropped_later is not None:
            restore = if_then(columns_dropped_later,
                              # Kept (renamed, instant) so which values the backfill wrote stays known after the drop.
                              S("v_backup := {base} || '_' || pg_catalog.to_char(pg_catalog.clock_timestamp(),"
                                " 'YYYYMMDD_HH24MISS_US');").format(
                                  base=sql.Literal(rollback_backup_prefix(self.ctx.version, self.backup_name))),
                              S("EXECUTE 'ALTER TABLE ' || {b} || ' RENAME TO ' || pg_catalog.quote_ident(v_backup);"
                                ).format(b=sql.Literal(render(b))),
                              S("RAISE NOTICE '%', {msg} || v_backup;").format(msg=sql.Literal(
                                  f"dbdeploy {self.ctx.label}: backfill of {self.table}: not restored, the rollback "
                                  f"drops the column(s) {', '.join(self.assignments)} it added; the values before the "
                                  f"deploy and the values it wrote are kept in {self.ctx.backup_schema}.")),
                              otherwise=[restore])
        body = block(
            drop_batch_function(fn),
            if_then(S("{} IS NOT NULL").format(regclass(b)), restore),
            noop_batch_function(fn, "rows_restored"))
        declare = ["v_restored bigint", "v_total bigint", "v_backup text"]
        return Step("restore_backfill", self.table, "ROW EXCLUSIVE", True, do_block(body, declare=declare),
                    f"prepare the restore of the values the backfill of {self.table} overwrote")

    def restore_batches_step(self) -> Step:
        """Rollback, second step (no transaction, ROW EXCLUSIVE): call the batch function
        (:meth:`_restore_batch_query`) until it sees no row, one transaction per batch; psql runs the
        DO block's loop (COMMIT per batch), the executor the statement between the batch markers.
        A killed run resumes at the cursor: a committed batch is never run again."""
        statement = call_batch_function(self.restore_function, "rows_restored")
        return Step("restore_backfill_values", self.table, "ROW EXCLUSIVE", False,
                    batch_loop(statement, self.batch_size),
                    f"restore the values the backfill of {self.table} overwrote, in rows not changed since, in "
                    f"batches of {self.batch_size} rows at most, each sized to take about batch_time")

    def restore_finish_step(self) -> Step:
        """Rollback, last step (one transaction, dbdeploy's tables only): the NOTICE with the rows
        restored, left (recorded in ``<backup>_not_restored``, dropped when empty) and deleted since
        (backed-up rows minus the other two); then the backup, both cursor tables and the batch
        function are dropped."""
        label, table = self.ctx.label, self.table
        b, kept, cur = self.backup, self.not_restored, self.restore_cursor
        report = block(
            S("SELECT c.dbdeploy_rows_restored, c.dbdeploy_rows_kept, c.dbdeploy_batches_done"
              " INTO v_restored, v_kept, v_batches FROM {} AS c;").format(cur),
            S("SELECT pg_catalog.count(*) INTO v_total FROM {};").format(b),
            if_then(relation_exists(f"{self.ctx.backup_schema}.{self.not_restored_name}"),
                    if_then(S("NOT EXISTS (SELECT 1 FROM {})").format(kept), S("DROP TABLE {};").format(kept))),
            S("RAISE NOTICE '%', {msg} || v_restored || {left} || v_kept || {where} || (v_total - v_restored - v_kept)"
              " || {deleted} || v_batches || {batches};").format(
                msg=sql.Literal(f"dbdeploy {label}: backfill of {table}: restored the values before the deploy in "),
                left=sql.Literal(" row(s); left "),
                where=sql.Literal(f" row(s) the application changed since the deploy as they are (recorded in "
                                  f"{self.ctx.backup_schema}.{self.not_restored_name}); "),
                deleted=sql.Literal(" backed-up row(s) no longer exist; "),
                batches=sql.Literal(" batch(es)")))
        body = block(
            if_then(S("{} AND {}").format(relation_exists(f"{self.ctx.backup_schema}.{self.restore_name}"),
                                          relation_exists(f"{self.ctx.backup_schema}.{self.backup_name}")), report),
            drop_batch_function(self.restore_function),
            S("DROP TABLE IF EXISTS {};").format(b),
            S("DROP TABLE IF EXISTS {};").format(cur),
            S("DROP TABLE IF EXISTS {};").format(self.progress))
        return Step("restore_backfill_finish", table, "NONE", True,
                    do_block(body, declare=["v_restored bigint", "v_kept bigint", "v_total bigint",
                                            "v_batches bigint"]),
                    f"report the restore of {table} and remove the backfill's backup and cursor tables")

    def restore_steps(self, dropped_later: bool = False,
                      columns_dropped_later: sql.Composable | None = None) -> list[Step]:
        """Rollback: put the saved values back where the application has not changed them since,
        in batches, then remove the backfill's own tables.

        Three steps: :meth:`restore_setup_step`, :meth:`restore_batches_step` (at most ``batch_size``
        rows per transaction, sized by time, in key order; row locks only on a batch's rows, only until it commits) and
        :meth:`restore_finish_step`. Per batch, rows still holding what the backfill wrote get their
        old values; a row changed since (any backfilled column differs from the value written, compared
        by :meth:`_differs`) keeps its value, and its key, its value before the deploy (under the
        column's name), the value written and the current value (``dbdeploy_current_<column>``) are
        appended to ``<backup>_not_restored``; rows deleted since are counted at the end. Resumable:
        the cursor commits with each batch, so a killed rollback run again continues at the first
        backup key not yet done.

        ``dropped_later``: the rollback drops the table afterwards (copying every row), so nothing
        is restored; one step only removes the backfill's backup and cursor tables.
        ``columns_dropped_later``: a condition, true at run time when the rollback drops every
        backfilled column afterwards (this migration added them): then nothing is restored either
        (restoring values into a column about to be dropped would only rewrite the table).
        """
        if self.keep_old and not dropped_later:
            return [self.restore_setup_step(columns_dropped_later), self.restore_batches_step(),
                    self.restore_finish_step()]
        statements: list[sql.Composable] = []
        if self.keep_old:
            statements.append(S("DROP TABLE IF EXISTS {};").format(self.backup))
        statements.append(S("DROP TABLE IF EXISTS {};").format(self.progress))
        return [Step("drop_backfill_state", self.table, "ROW EXCLUSIVE", True, do_block(block(*statements)),
                     f"remove the backfill state of {self.table}")]


__all__ = ["BATCH_BEGIN", "BATCH_END", "BackfillPlan", "notice"]
