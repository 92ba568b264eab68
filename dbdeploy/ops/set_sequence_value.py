"""SetSequenceValue: ``SELECT setval(…)``; the rollback puts the sequence back where it was.

``setval`` takes ROW EXCLUSIVE on the sequence (measured, tests/test_step_locks.py); it is not
transactional (PostgreSQL docs, "Sequence Manipulation Functions": setval's effect is not undone by a
rollback), so the step saves the position first, in the same transaction, and sets the value only on
the run that saved it: a re-run never moves the sequence back behind values handed out since.

The position before the version (``last_value``, ``is_called``) is kept in
``<backup schema>.saved_sequences`` (first run only). The rollback restores it with ``setval(…,
last_value, is_called)`` and deletes the row. Values nextval handed out after the forward are not taken
back: they stay in the rows that hold them. So the preflight refuses, before any change, when the
restored position would let nextval hand out values that a column using the sequence (its OWNED BY /
serial / identity column, or any column whose default calls nextval of it) already holds — naming the
column, its maximum and the fix — and when the version's saved row is missing.
"""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import TableName
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext
from dbdeploy.ops.common import S, fail, forget_owned, is_owned, notice, record_owned
from dbdeploy.ops.sequence_common import (
    is_sequence,
    save_state,
    saved_row_exists,
    saved_sequences_table,
    saved_table_missing,
    saved_where,
)
from dbdeploy.sql import literal, qualified, regclass
from dbdeploy.sql.blocks import block, do_block, if_then


def sequence_columns(name: str) -> sql.Composable:
    """A query of the columns that take values from sequence ``name``: the column owning it (OWNED BY,
    serial, identity) and every column whose default depends on it (``nextval``), as ``tbl`` (regclass
    text) and ``col`` (name)."""
    return S(
        "SELECT DISTINCT d.refobjid::pg_catalog.regclass::text AS tbl, a.attname::text AS col\n"
        "    FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_attribute a\n"
        "      ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid\n"
        "    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = {rel}\n"
        "      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i')\n"
        "UNION\n"
        "SELECT ad.adrelid::pg_catalog.regclass::text, a.attname::text\n"
        "    FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_attrdef ad ON ad.oid = d.objid\n"
        "    JOIN pg_catalog.pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum\n"
        "    WHERE d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass\n"
        "      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = {rel}").format(
        rel=regclass(name))


class SetSequenceValue(Operation):
    """Set sequence ``name`` (``schema.name``) to ``value``: with ``is_called`` True (the default) the
    next nextval returns value + increment, with False it returns ``value`` (PostgreSQL docs, setval).
    The rollback restores the previous position; values handed out since are not taken back."""

    kind: ClassVar[str] = "set_sequence_value"
    name: TableName
    value: int
    is_called: bool = True

    def target(self) -> str:
        return self.name

    @property
    def _called(self) -> str:
        return "true" if self.is_called else "false"

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.SequenceValue(self.name, self.value, self.is_called)]

    def forward(self, ctx: PlanContext) -> list[Step]:
        body = block(
            if_then(S("NOT {}").format(is_sequence(self.name)),
                    fail(ctx, f"sequence {self.name} does not exist (or is not a sequence)",
                         "Nothing was changed. Check the name in the spec, or create the sequence first.")),
            save_state(ctx, self.kind, self.name),
            record_owned(ctx, "sequence_state", f"{self.kind} {self.name}"),
            if_then(S("v_rows = 1"),
                    S("PERFORM pg_catalog.setval({rel}, {v}, {c});").format(
                        rel=regclass(self.name), v=literal(self.value), c=literal(self.is_called)),
                    notice(ctx, f"set sequence {self.name} to {self.value} (is_called {self._called}); its position "
                                f"before is kept in {ctx.backup_schema}.saved_sequences"),
                    otherwise=[notice(ctx, f"sequence {self.name} was set by an earlier run of {ctx.label}; left "
                                           "where it is (values may have been handed out since)")]),
        )
        return scaled([Step(self.kind, self.name, "ROW EXCLUSIVE", True, do_block(body, declare=["v_rows bigint"]),
                            f"set sequence {self.name} to {self.value}")], queries.CATALOG_ONLY)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        saved, where = saved_sequences_table(ctx), saved_where(ctx, self.kind, self.name)
        key = f"{self.kind} {self.name}"
        nothing = [notice(ctx, f"no saved position of sequence {self.name} (nothing to restore: rolled back "
                               "already, or the forward did not run)"),
                   forget_owned(ctx, "sequence_state", key), S("RETURN;")]
        body = block(
            if_then(saved_table_missing(ctx), *nothing),
            if_then(S("NOT {}").format(saved_row_exists(ctx, self.kind, self.name)), *nothing),
            S("SELECT s.last_value, s.is_called INTO v_old FROM {saved} s WHERE {where};").format(
                saved=saved, where=where),
            if_then(is_sequence(self.name),
                    S("PERFORM pg_catalog.setval({rel}, v_old.last_value, v_old.is_called);").format(
                        rel=regclass(self.name)),
                    S("RAISE NOTICE '%', {msg} || v_old.last_value || ' (is_called ' || v_old.is_called || ')';")
                    .format(msg=literal(f"dbdeploy {ctx.label}: put sequence {self.name} back at ")),
                    otherwise=[notice(ctx, f"sequence {self.name} is gone; its saved position is dropped")]),
            S("DELETE FROM {saved} WHERE {where};").format(saved=saved, where=where),
            forget_owned(ctx, "sequence_state", key),
        )
        return [Step("restore_sequence_value", self.name, "ROW EXCLUSIVE", True,
                     do_block(body, declare=["v_old record"]),
                     f"put sequence {self.name} back where it was before {ctx.label}")]

    def rollback_preflight(self, ctx: PlanContext) -> list[sql.Composable]:
        key = f"{self.kind} {self.name}"
        missing = fail(ctx, f"the position sequence {self.name} had before {ctx.label}, saved in "
                            f"{ctx.backup_schema}.saved_sequences, is missing, so the rollback cannot restore it",
                       f"Set {self.name} by hand (setval) to where it should be, delete the row of {key} (object_type "
                       f"sequence_state, version {ctx.version}) from {ctx.history_schema}.migration_objects, then "
                       "run the rollback again.")
        # The next value nextval would hand out after the restore, and the values the sequence's columns hold.
        collide = S(
            "DECLARE\n"
            "    v_col record;\n"
            "    v_next numeric;\n"
            "    v_inc bigint;\n"
            "    v_held numeric;\n"
            "BEGIN\n"
            "    SELECT o.last_value + CASE WHEN o.is_called THEN s.seqincrement ELSE 0 END, s.seqincrement\n"
            "        INTO v_next, v_inc\n"
            "        FROM {saved} o, pg_catalog.pg_sequence s WHERE {where} AND s.seqrelid = {rel};\n"
            "    FOR v_col IN {columns} LOOP\n"
            "        EXECUTE 'SELECT ' || CASE WHEN v_inc > 0 THEN 'pg_catalog.max' ELSE 'pg_catalog.min' END\n"
            "            || '(' || pg_catalog.quote_ident(v_col.col) || ')::numeric FROM ' || v_col.tbl INTO v_held;\n"
            "        IF v_held IS NOT NULL AND ((v_inc > 0 AND v_next <= v_held) OR (v_inc < 0 AND v_next >= v_held))"
            " THEN\n"
            "            RAISE EXCEPTION '%', {msg} || v_next || ', but ' || v_col.tbl || '.'\n"
            "                || pg_catalog.quote_ident(v_col.col) || ' already holds values up to ' || v_held\n"
            "                USING HINT = {hint};\n"
            "        END IF;\n"
            "    END LOOP;\n"
            "END;").format(
            saved=saved_sequences_table(ctx), where=saved_where(ctx, self.kind, self.name), rel=regclass(self.name),
            columns=sequence_columns(self.name),
            msg=literal(f"dbdeploy {ctx.label}: restoring sequence {self.name} would let nextval hand out "),
            hint=literal(f"Values handed out since {ctx.label} are in use: keep {ctx.label} (do not roll it back), or "
                         f"delete the rows holding them first; after the rollback a nextval would fail with a "
                         "duplicate key."))
        return [if_then(is_owned(ctx, "sequence_state", key),
                        if_then(saved_table_missing(ctx), missing),
                        if_then(S("NOT {}").format(saved_row_exists(ctx, self.kind, self.name)), missing),
                        if_then(is_sequence(self.name), collide))]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        position = queries.query(S("SELECT last_value, is_called FROM {}").format(qualified(self.name)))
        return ChecklistItems(
            prerequisites=[CheckQuery(f"Sequence {self.name} exists (its position now is kept for the rollback)",
                                      queries.query(S("SELECT {} AS is_sequence").format(is_sequence(self.name))),
                                      "true"),
                           CheckQuery(f"Sequence {self.name}: its position now", position, "one row")],
            health_checks=[CheckQuery(f"Sequence {self.name} was set to {self.value} (is_called {self._called}); "
                                      "nextval may have moved it on since", position, f"{self.value} or past it")],
            notes=[f"setval on {self.name} is not transactional and takes effect at once for every session: values "
                   "handed out after the deploy are not taken back by a rollback."],
            rollback_notes=[f"The rollback puts {self.name} back at its position before {ctx.label} (saved at "
                            f"forward time in {ctx.backup_schema}.saved_sequences). It refuses before any change when "
                            "a column using the sequence (owned by, or a default calling nextval of it) already holds "
                            "the values nextval would hand out next — values handed out since the deploy are never "
                            "taken back — or when the saved position is missing."])
