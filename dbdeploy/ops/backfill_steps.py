"""Batched, restartable, reversible data updates (never ``UPDATE … LIMIT``, which does not exist).

A backfill walks the table in key order, ``batch_size`` rows at a time, each batch one statement
and one transaction:

- ``batch`` locks the next rows (``FOR UPDATE``) and reads their current values;
- ``saved`` copies the values it is about to overwrite into a backup table (first copy wins, so a
  re-run never replaces an original value with an already-backfilled one);
- ``changed`` applies the new values to rows matching ``where``;
- ``moved`` advances a one-row cursor table to the first key after the batch.

Because the cursor commits with the batch, a killed run resumes at the first row not yet done,
and a finished backfill (cursor NULL) does nothing on a re-run. The same batch statement is run
by the PL/pgSQL loop below (psql) and, between its markers, by the dbdeploy executor.
"""

from __future__ import annotations

from psycopg import sql

from dbdeploy.ops.base import PlanContext, Step
from dbdeploy.ops.common import S, backup_table, block, do_block, if_then, notice, relation_missing
from dbdeploy.render.markers import BATCH_BEGIN, BATCH_END  # noqa: E402
from dbdeploy.spec.names import derived_name, split_table
from dbdeploy.sql import ident, qualified, render


class BackfillPlan:
    """Names and SQL of one backfill."""

    def __init__(self, ctx: PlanContext, table: str, assignments: dict[str, str], where: str | None,
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

    @property
    def backup(self) -> sql.Identifier:
        return backup_table(self.ctx, self.backup_name)

    @property
    def progress(self) -> sql.Identifier:
        return backup_table(self.ctx, self.progress_name)

    def _key_cols(self, alias: str | None = None) -> sql.Composable:
        return S(", ").join(ident(alias, k) if alias else ident(k) for k in self.key)

    def _cursor_compare(self) -> sql.Composable:
        left = S("({})").format(self._key_cols("t"))
        right = S(", ").join(S("(SELECT p.{k} FROM {prog} AS p)").format(k=ident(k), prog=self.progress)
                             for k in self.key)
        return S("{} >= ({})").format(left, right)

    def setup_step(self) -> Step:
        columns = list(self.assignments)
        statements: list[sql.Composable] = []
        if self.keep_old:
            statements += [
                S("CREATE TABLE {b} AS SELECT {cols} FROM {t} WITH NO DATA;").format(
                    b=self.backup, cols=S(", ").join(ident(c) for c in [*self.key, *columns]),
                    t=qualified(self.table)),
                S("ALTER TABLE {b} ADD PRIMARY KEY ({k});").format(b=self.backup, k=self._key_cols()),
                S("REVOKE ALL ON TABLE {b} FROM PUBLIC;").format(b=self.backup),
            ]
        statements += [
            S("CREATE TABLE {p} AS SELECT {k} FROM {t} ORDER BY {k} LIMIT 1;").format(
                p=self.progress, k=self._key_cols(), t=qualified(self.table)),
            S("ALTER TABLE {p} ADD COLUMN dbdeploy_rows_done bigint NOT NULL DEFAULT 0,"
              " ADD COLUMN dbdeploy_batches_done bigint NOT NULL DEFAULT 0;").format(p=self.progress),
            if_then(S("NOT EXISTS (SELECT 1 FROM {})").format(self.progress),
                    S("INSERT INTO {} DEFAULT VALUES;").format(self.progress)),
            S("REVOKE ALL ON TABLE {p} FROM PUBLIC;").format(p=self.progress),
        ]
        body = if_then(relation_missing(f"{self.ctx.backup_schema}.{self.progress_name}"), *statements)
        what = "with a copy of the values it overwrites" if self.keep_old else ""
        return Step("backfill_setup", self.table, "ACCESS SHARE", True, do_block(body),
                    f"prepare the backfill of {self.table} {what}".strip())

    def batch_statement(self) -> str:
        n = self.batch_size
        key_aliases = [f"dbdeploy_key_{i + 1}" for i in range(len(self.key))]
        old_aliases = [f"dbdeploy_old_{i + 1}" for i in range(len(self.assignments))]
        predicate = S(self.where) if self.where else S("true")
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
                order=self._key_cols("t"), n=sql.Literal(n)),
            S("next_key AS (\n    SELECT {keys}\n    FROM {t} AS t\n    WHERE {cursor}\n"
              "    ORDER BY {order}\n    OFFSET {n} LIMIT 1\n)").format(
                keys=self._key_cols("t"), t=qualified(self.table), cursor=self._cursor_compare(),
                order=self._key_cols("t"), n=sql.Literal(n)),
        ]
        if self.keep_old:
            ctes.append(S(
                "saved AS (\n    INSERT INTO {b} ({cols})\n    SELECT {src} FROM batch WHERE dbdeploy_match\n"
                "    ON CONFLICT ({k}) DO NOTHING\n)").format(
                b=self.backup, cols=S(", ").join(ident(c) for c in [*self.key, *self.assignments]),
                src=S(", ").join(ident(a) for a in [*key_aliases, *old_aliases]), k=self._key_cols()))
        sets = S(", ").join(S("{} = {}").format(ident(c), S(e)) for c, e in self.assignments.items())
        ctes.append(S(
            "changed AS (\n    UPDATE {t} AS t SET {sets}\n    FROM batch\n"
            "    WHERE {join} AND batch.dbdeploy_match\n    RETURNING 1\n)").format(
            t=qualified(self.table), sets=sets, join=join_on))
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
        return render(query)

    def run_step(self) -> Step:
        statement = self.batch_statement()
        body = "\n".join([
            "LOOP",
            "    " + BATCH_BEGIN,
            *("    " + line for line in statement.splitlines()),
            "    " + BATCH_END,
            "    INTO v_rows, v_changed;",
            "    EXIT WHEN v_rows = 0;",
            "    COMMIT;",
            "END LOOP;",
        ])
        text = do_block(body, declare=["v_rows bigint", "v_changed bigint"])
        return Step("backfill", self.table, "ROW EXCLUSIVE", False, text,
                    f"backfill {', '.join(self.assignments)} of {self.table} in batches of {self.batch_size}")

    def restore_step(self) -> Step:
        """Rollback: put the saved values back, then remove the backfill's own tables."""
        statements: list[sql.Composable] = []
        if self.keep_old:
            sets = S(", ").join(S("{c} = b.{c}").format(c=ident(c)) for c in self.assignments)
            join = S(" AND ").join(S("t.{k} = b.{k}").format(k=ident(k)) for k in self.key)
            restore = S("UPDATE {t} AS t SET {sets} FROM {b} AS b WHERE {join};").format(
                t=qualified(self.table), sets=sets, b=self.backup, join=join)
            statements.append(if_then(
                S("{} IS NOT NULL AND {} IS NOT NULL").format(
                    S("pg_catalog.to_regclass({})").format(sql.Literal(render(qualified(self.table)))),
                    S("pg_catalog.to_regclass({})").format(sql.Literal(render(self.backup)))),
                restore,
                S("GET DIAGNOSTICS v_restored = ROW_COUNT;"),
                S("RAISE NOTICE '%', {msg} || v_restored || ' row(s)';").format(msg=sql.Literal(
                    f"dbdeploy {self.ctx.label}: restored the values the backfill of {self.table} "
                    "overwrote: "))))
            statements.append(S("DROP TABLE IF EXISTS {};").format(self.backup))
        statements.append(S("DROP TABLE IF EXISTS {};").format(self.progress))
        kind = "restore_backfill" if self.keep_old else "drop_backfill_state"
        summary = (f"restore the values the backfill of {self.table} overwrote" if self.keep_old
                   else f"remove the backfill state of {self.table}")
        return Step(kind, self.table, "ROW EXCLUSIVE", True,
                    do_block(block(*statements), declare=["v_restored bigint"]), summary)


__all__ = ["BATCH_BEGIN", "BATCH_END", "BackfillPlan", "notice"]
