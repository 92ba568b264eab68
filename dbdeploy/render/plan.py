"""Turn migrations into ordered forward and rollback steps.

Operations are validated against the schema the earlier specs built (so a later spec can rely
on columns and keys an earlier one created), NOT NULL enforcement of a new column is placed after
the backfill that fills it, and rollback undoes operations newest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dbdeploy.errors import SpecError
from dbdeploy.ops import AddColumn, Backfill, PlanContext, SchemaState, Step
from dbdeploy.ops.base import ChecklistItems
from dbdeploy.spec.loader import LoadedMigration
from dbdeploy.spec.migration import Migration


@dataclass(frozen=True)
class MigrationPlan:
    migration: Migration
    forward: list[Step]
    rollback: list[Step]
    tables_created: tuple[str, ...]
    expects: list[dict]
    checklist: list[ChecklistItems] = field(default_factory=list)   # per operation, in operation order


def plan_all(loaded: list[LoadedMigration], history_schema: str = "migrations") -> list[MigrationPlan]:
    state = SchemaState(complete=True)
    plans = []
    for item in loaded:
        try:
            plans.append(plan_migration(item.migration, state, history_schema))
        except SpecError as exc:
            raise exc.located(str(item.source)) from None
    return plans


def plan_migration(migration: Migration, state: SchemaState, history_schema: str = "migrations") -> MigrationPlan:
    """Plan one migration, advancing ``state`` past it."""
    ops = migration.operations
    last_fill: dict[str, int] = {}
    for i, op in enumerate(ops):
        if isinstance(op, Backfill):
            for column in op.set:
                last_fill[f"{op.table}.{column}"] = i
    deferred: dict[int, list[tuple[list[Step], Step]]] = {}
    forward: list[Step] = []
    undo: list[list[Step]] = []          # per forward group, in forward order
    created: list[str] = []
    expects: list[dict] = []
    checklist: list[ChecklistItems] = []
    rollback_drops = frozenset(op.target() for op in ops if op.kind == "create_table")
    for i, op in enumerate(ops):
        ctx = PlanContext(version=migration.version, migration_name=migration.name, index=i + 1,
                          state=state.copy(), history_schema=history_schema, rollback_drops=rollback_drops)
        try:
            op.apply(state)
            steps = op.forward(ctx)
            undo.append(op.rollback(ctx))
            expects += op.expects(ctx)
            checklist.append(op.checklist(ctx, ChecklistItems.merged(checklist)))
            if isinstance(op, AddColumn) and op.needs_not_null_steps:
                after = last_fill.get(op.column_key)
                if after is not None and after > i:
                    deferred.setdefault(after, []).append((op.not_null_steps(ctx), op.not_null_undo(ctx)))
                else:
                    steps += op.not_null_steps(ctx)
        except ValueError as exc:
            raise SpecError(str(exc), field=f"Migration {migration.version}.operations[{i}] ({op.describe()})"
                            ) from None
        forward += steps
        for not_null, not_null_undo in deferred.pop(i, []):
            forward += not_null
            undo.append([not_null_undo])
        if op.kind == "create_table":
            created.append(op.target())
    rollback = [step for group in reversed(undo) for step in group]
    return MigrationPlan(migration, forward, rollback, tuple(created), expects, checklist)
