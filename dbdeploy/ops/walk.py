"""The one walk over a migration's operations: each operation's ``apply`` advances one SchemaState.

Migration validation, planning (:mod:`dbdeploy.plan.migration_plan`) and lint (:mod:`dbdeploy.lint.engine`)
all walk with :func:`walk`, so they see the same state at every operation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from dbdeploy.ops.base import Operation, Position, SchemaState
from dbdeploy.ops.reserved import check_operation as check_reserved_schemas


@dataclass(frozen=True)
class Visit:
    """One operation of the walk, after its ``apply``.

    ``before`` is a snapshot of the state before the operation (None unless asked for); ``state`` is the
    walk's live state, now past the operation (it changes when the walk goes on: copy it to keep it);
    ``error`` is the ValueError the operation's validation raised (then ``state`` holds what ``apply``
    recorded before it raised).
    """

    index: int                   # 0-based position in the migration
    op: Operation
    later: tuple                 # the operations after it in the migration
    before: SchemaState | None
    state: SchemaState
    error: ValueError | None


def walk(operations: Sequence[Operation], state: SchemaState, *, version: str = "",
         history_schema: str | None = None, snapshots: bool = False) -> Iterator[Visit]:
    """Advance ``state`` past each of ``operations`` (one migration's, with ``version``) in order: the
    reserved-schema check (against ``history_schema``; None: the default names) then ``op.apply(state)``,
    once per operation. Yields a :class:`Visit` per operation, before going on to the next; the caller
    decides what a validation error means (raise it, or report it). With ``snapshots`` each visit carries a
    copy of the state before the operation (shallow, copy-on-write: see :meth:`SchemaState.copy`)."""
    operations = tuple(operations)
    for i, op in enumerate(operations):
        before = state.copy() if snapshots else None
        state.at = Position(version, i)
        error = None
        try:
            check_reserved_schemas(op, history_schema)
            op.apply(state)
        except ValueError as exc:
            error = exc
        yield Visit(i, op, operations[i + 1:], before, state, error)
