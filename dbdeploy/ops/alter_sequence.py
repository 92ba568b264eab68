"""AlterSequence: change an existing sequence's parameters (and optionally RESTART it); the rollback
restores the previous parameters exactly.

``ALTER SEQUENCE`` takes SHARE ROW EXCLUSIVE on the sequence (PostgreSQL's ``AlterSequence``; measured
by tests/test_step_locks.py): nextval in other sessions waits for the step's short transaction.

Before its change the forward saves the sequence's parameters (``pg_sequence``: type, start, increment,
min, max, cache, cycle) and position (``last_value``, ``is_called``) in ``<backup schema>.saved_sequences``
— first run only (``ON CONFLICT DO NOTHING``). The parameters are set on every run (idempotent); the
``RESTART`` only on the run that saved the row, so a re-run never moves the sequence back behind
values handed out since. The rollback sets every saved parameter back in one ``ALTER SEQUENCE`` and,
when the forward restarted the sequence, its saved position (``setval`` with ``is_called``); then
deletes the row. The preflight refuses before any change when the version's saved row is missing, or
when the sequence's position now lies outside the saved bounds (PostgreSQL would refuse the ALTER).
"""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql
from pydantic import model_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import TableName
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, fail, forget_owned, is_owned, notice, record_owned
from dbdeploy.ops.sequence_common import (
    SequenceFact,
    SequenceType,
    check_parameters,
    is_sequence,
    parameter_sql,
    save_state,
    saved_row_exists,
    saved_sequences_table,
    saved_table_missing,
    saved_where,
)
from dbdeploy.sql import literal, qualified, regclass, render
from dbdeploy.sql.blocks import block, do_block, if_then


class AlterSequence(Operation):
    """Change sequence ``name`` (``schema.name``): ``as_type``, ``increment``, ``min_value``,
    ``max_value``, ``start``, ``cache``, ``cycle`` (None: unchanged) and ``restart`` (RESTART WITH that
    value). Refused at load when it changes nothing or PostgreSQL would refuse the values (ValueError,
    reason — fix)."""

    kind: ClassVar[str] = "alter_sequence"
    name: TableName
    as_type: SequenceType | None = None
    increment: int | None = None
    min_value: int | None = None
    max_value: int | None = None
    start: int | None = None
    cache: int | None = None
    cycle: bool | None = None
    restart: int | None = None

    @model_validator(mode="after")
    def _parameters(self) -> AlterSequence:
        if all(getattr(self, f) is None for f in ("as_type", "increment", "min_value", "max_value", "start", "cache",
                                                   "cycle", "restart")):
            raise ValueError(f"AlterSequence of {self.name} changes nothing — fix: give at least one of as_type, "
                             "increment, min_value, max_value, start, cache, cycle, restart (or remove it)")
        check_parameters(self.as_type, self.start, self.increment, self.min_value, self.max_value, self.cache,
                         self.restart)
        return self

    def target(self) -> str:
        return self.name

    def apply(self, state: SchemaState) -> None:
        known = state.sequences.get(self.name)
        if not isinstance(known, SequenceFact):
            return        # a sequence the specs did not create: the database is the truth
        state.sequences[self.name] = SequenceFact(
            self.as_type or known.as_type, self.start if self.start is not None else known.start,
            self.increment if self.increment is not None else known.increment,
            self.min_value if self.min_value is not None else known.min_value,
            self.max_value if self.max_value is not None else known.max_value,
            self.cache if self.cache is not None else known.cache,
            self.cycle if self.cycle is not None else known.cycle, known.owned_by)

    def _clauses(self) -> list[sql.Composable]:
        return parameter_sql(self.as_type, self.start, self.increment, self.min_value, self.max_value, self.cache,
                             self.cycle)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        if any(isinstance(op, AlterSequence) and op.name == self.name for op in ctx.later_ops):
            return []     # the later AlterSequence of this migration says what holds after it
        return [expect.Sequence(self.name, as_type=self.as_type, start=self.start, increment=self.increment,
                                min_value=self.min_value, max_value=self.max_value, cache=self.cache, cycle=self.cycle,
                                altered=True)]

    def forward(self, ctx: PlanContext) -> list[Step]:
        clauses = self._clauses()
        body = block(
            if_then(S("NOT {}").format(is_sequence(self.name)),
                    fail(ctx, f"sequence {self.name} does not exist (or is not a sequence)",
                         "Nothing was changed. Check the name in the spec, or create the sequence first.")),
            save_state(ctx, self.kind, self.name),
            record_owned(ctx, "sequence_state", f"{self.kind} {self.name}"),
            S("ALTER SEQUENCE {} {};").format(qualified(self.name), S(" ").join(clauses)) if clauses else None,
            if_then(S("v_rows = 1"),
                    S("ALTER SEQUENCE {} RESTART WITH {};").format(qualified(self.name), literal(self.restart)),
                    notice(ctx, f"restarted sequence {self.name} at {self.restart}"))
            if self.restart is not None else None,
            notice(ctx, f"altered sequence {self.name} (its parameters before are kept in "
                        f"{ctx.backup_schema}.saved_sequences)"),
        )
        return scaled([Step(self.kind, self.name, "SHARE ROW EXCLUSIVE", True,
                            do_block(body, declare=["v_rows bigint"]), f"alter sequence {self.name}")],
                      queries.CATALOG_ONLY)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        saved, where = saved_sequences_table(ctx), saved_where(ctx, self.kind, self.name)
        key = f"{self.kind} {self.name}"
        nothing = [notice(ctx, f"no saved parameters of sequence {self.name} (nothing to restore: rolled back "
                               "already, or the forward did not run)"),
                   forget_owned(ctx, "sequence_state", key), S("RETURN;")]
        seq = literal(render(qualified(self.name)))
        restore_position = block(
            S("PERFORM pg_catalog.setval({rel}, v_old.last_value, v_old.is_called);").format(rel=regclass(self.name)),
            notice(ctx, f"put sequence {self.name} back where it was before {ctx.label}"),
        ) if self.restart is not None else None
        body = block(
            if_then(saved_table_missing(ctx), *nothing),
            if_then(S("NOT {}").format(saved_row_exists(ctx, self.kind, self.name)), *nothing),
            S("SELECT s.* INTO v_old FROM {saved} s WHERE {where};").format(saved=saved, where=where),
            if_then(is_sequence(self.name),
                    # every saved value is a number or one of three type names: nothing read from the
                    # table becomes SQL text as it is
                    S("EXECUTE 'ALTER SEQUENCE ' || {seq} || ' AS ' || CASE v_old.type_name WHEN 'smallint'"
                      " THEN 'smallint' WHEN 'integer' THEN 'integer' ELSE 'bigint' END"
                      " || ' INCREMENT BY ' || v_old.increment_by || ' MINVALUE ' || v_old.min_value"
                      " || ' MAXVALUE ' || v_old.max_value || ' START WITH ' || v_old.start_value"
                      " || ' CACHE ' || v_old.cache_size"
                      " || CASE WHEN v_old.cycle THEN ' CYCLE' ELSE ' NO CYCLE' END{restart};").format(
                        seq=seq, restart=S(" || ' RESTART WITH ' || v_old.last_value")
                        if self.restart is not None else S("")),
                    restore_position,
                    notice(ctx, f"restored the parameters sequence {self.name} had before {ctx.label}"),
                    otherwise=[notice(ctx, f"sequence {self.name} is gone; its saved parameters are dropped")]),
            S("DELETE FROM {saved} WHERE {where};").format(saved=saved, where=where),
            forget_owned(ctx, "sequence_state", key),
        )
        return [Step("restore_sequence", self.name, "SHARE ROW EXCLUSIVE", True,
                     do_block(body, declare=["v_old record"]),
                     f"restore the parameters of sequence {self.name} from before {ctx.label}")]

    def rollback_preflight(self, ctx: PlanContext) -> list[sql.Composable]:
        key = f"{self.kind} {self.name}"
        missing = fail(ctx, f"the parameters sequence {self.name} had before {ctx.label}, saved in "
                            f"{ctx.backup_schema}.saved_sequences, are missing, so the rollback cannot restore them",
                       f"Set the parameters of {self.name} by hand to what they were, delete the row of {key} "
                       f"(object_type sequence_state, version {ctx.version}) from {ctx.history_schema}."
                       "migration_objects, then run the rollback again.")
        outside = None
        if self.restart is None:   # the position stays: it must fit the saved bounds
            outside = if_then(
                S("{seq} AND EXISTS (SELECT 1 FROM {saved} o, {q} q WHERE {where}"
                  " AND (q.last_value < o.min_value OR q.last_value > o.max_value))").format(
                    seq=is_sequence(self.name), saved=saved_sequences_table(ctx), q=qualified(self.name),
                    where=saved_where(ctx, self.kind, self.name)),
                fail(ctx, f"sequence {self.name} is now outside the bounds it had before {ctx.label} "
                          "(PostgreSQL would refuse to restore them)",
                     f"Move it back inside them with setval (if no row holds the values in between), or keep "
                     f"{ctx.label}."))
        return [if_then(is_owned(ctx, "sequence_state", key),
                        if_then(saved_table_missing(ctx), missing),
                        if_then(S("NOT {}").format(saved_row_exists(ctx, self.kind, self.name)), missing),
                        outside)]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        state = queries.query(S(
            "SELECT pg_catalog.format_type(s.seqtypid, NULL) AS type, s.seqstart, s.seqincrement, s.seqmin,"
            " s.seqmax, s.seqcache, s.seqcycle\nFROM pg_catalog.pg_sequence s WHERE s.seqrelid = {rel}").format(
            rel=regclass(self.name)))
        notes = [f"ALTER SEQUENCE {self.name} takes SHARE ROW EXCLUSIVE on the sequence for a moment: nextval in "
                 "other sessions waits for it."]
        if self.restart is not None:
            notes.append(f"RESTART WITH {self.restart}: values after it may already be in rows (a duplicate key on "
                         "the next insert); check the columns that use the sequence first.")
        return ChecklistItems(
            prerequisites=[CheckQuery(f"Sequence {self.name} exists; its parameters now (kept for the rollback)",
                                      state, "one row")],
            health_checks=[CheckQuery(f"Sequence {self.name}: its parameters after the deploy", state, "one row")],
            notes=notes,
            rollback_notes=[f"The rollback sets every parameter of {self.name} back to what it was before "
                            f"{ctx.label} (saved at forward time in {ctx.backup_schema}.saved_sequences)"
                            + (" and puts the sequence back at its position before the RESTART" if self.restart
                               is not None else "") + "; it refuses before any change when that saved state is "
                            "missing."])
