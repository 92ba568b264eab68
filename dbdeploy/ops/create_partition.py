"""CreatePartition: a new partition of a partitioned table (PostgreSQL docs, CREATE TABLE ``PARTITION OF``).

Forward (one step): ``CREATE TABLE child PARTITION OF parent <bounds>``, unless ``child`` exists — as this
version's (a re-run: nothing to do) or as a partition of ``parent`` that dbdeploy did not create (accepted
with a NOTICE: a scheduler such as pg_partman may have made it; its bounds are PostgreSQL's to check) —
any other relation of that name stops the step. PostgreSQL locks the parent ACCESS EXCLUSIVE while it adds
a partition (PostgreSQL 15–18); the partition is new and empty, so the lock lasts a catalog change, except
that a DEFAULT partition holding rows in the new bounds makes PostgreSQL scan it (and refuse when such a
row exists: the checklist counts them first).

Rollback: the partition is dropped only if this version created it, its rows copied to the backup schema
first (``drop_owned_table``: rows written into it since the forward are kept in that copy, never lost),
refused before any change while other objects depend on it.
"""

from __future__ import annotations

from typing import ClassVar

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import PartitionBoundSpec, TableName
from dbdeploy.model.names import split_table
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import (
    ChecklistItems,
    CheckQuery,
    Operation,
    PartitionFact,
    PlanContext,
    SchemaState,
    TableState,
)
from dbdeploy.ops.common import S, fail, is_owned, notice, record_owned, relation_exists
from dbdeploy.ops.create_table import drop_owned_table, drop_owned_table_preflight
from dbdeploy.sql import qualified, regclass
from dbdeploy.sql.blocks import block, do_block, if_then


class CreatePartition(Operation):
    """Create ``table`` as a partition of ``parent`` for ``bounds`` (``FOR VALUES …`` or ``DEFAULT``).

    Refused at generate: a parent the specs created without ``partition_by``, a second DEFAULT partition
    of a parent the specs know, a name already taken, ``table`` in another schema than ``parent`` (kept
    together, as dbdeploy's backups and ownership records assume). Errors: ValueError (reason — fix)."""

    kind: ClassVar[str] = "create_partition"
    parent: TableName
    table: TableName
    bounds: PartitionBoundSpec

    def apply(self, state: SchemaState) -> None:
        if split_table(self.table)[0] != split_table(self.parent)[0]:
            raise ValueError(f"partition {self.table} is in another schema than {self.parent} — fix: create it in "
                             f"schema {split_table(self.parent)[0]}")
        known = state.tables.get(self.parent)
        fact = state.partitions.get(self.parent)
        if known is not None and (fact is None or fact.key is None):
            raise ValueError(f"{self.parent} is not partitioned (its CreateTable has no partition_by) — fix: add "
                             "partition_by to it, or create an ordinary table")
        if self.bounds.is_default and any(
                f.parent == self.parent and f.default for f in state.partitions.values()):
            raise ValueError(f"{self.parent} already has a DEFAULT partition — fix: give this partition bounds")
        if self.table in state.tables:
            raise ValueError(f"table {self.table} is already created by an earlier operation — fix: pick another "
                             "partition name")
        state.claim(self.table, "table", self.table)
        if known is not None:
            # the partition has the parent's columns and key (PostgreSQL makes its own constraint names)
            state.tables[self.table] = TableState(columns=dict(known.columns), primary_key=list(known.primary_key))
        state.partitions[self.table] = PartitionFact(parent=self.parent, default=self.bounds.is_default)

    def target(self) -> str:
        return self.table

    def describe(self) -> str:
        return f"{self.kind} {self.table} of {self.parent}"

    def forward(self, ctx: PlanContext) -> list[Step]:
        child, parent = self.table, self.parent
        is_partition_of = S("EXISTS (SELECT 1 FROM pg_catalog.pg_inherits WHERE inhrelid = {c} AND inhparent = {p})"
                            ).format(c=regclass(child), p=regclass(parent))
        body = block(
            if_then(S("{} IS NULL").format(regclass(parent)),
                    fail(ctx, f"table {parent} does not exist", "Create the partitioned table first.")),
            if_then(S("(SELECT relkind FROM pg_catalog.pg_class WHERE oid = {}) <> 'p'").format(regclass(parent)),
                    fail(ctx, f"{parent} is not a partitioned table",
                         "Create it with partition_by, or create an ordinary table instead of a partition.")),
            if_then(relation_exists(child),
                    if_then(is_owned(ctx, "table", child),
                            notice(ctx, f"partition {child} was created by {ctx.label} already"),
                            otherwise=[if_then(is_partition_of,
                                               notice(ctx, f"partition {child} of {parent} exists (not made by "
                                                           f"{ctx.label}); left as it is"),
                                               otherwise=[fail(ctx, f"{child} exists and is not a partition of "
                                                                    f"{parent}",
                                                               "Rename or drop it, or pick another partition "
                                                               "name.")])]),
                    otherwise=[S("CREATE TABLE {c} PARTITION OF {p} {b};").format(
                        c=qualified(child), p=qualified(parent), b=self.bounds.sql()),
                        record_owned(ctx, "table", child)]),
        )
        return scaled([Step(self.kind, parent, "ACCESS EXCLUSIVE", True, do_block(body),
                            f"create partition {child} of {parent} {self.bounds}")],
                      "constant (catalog only; a DEFAULT partition with rows is scanned for rows in the new bounds)")

    def rollback(self, ctx: PlanContext) -> list[Step]:
        return [drop_owned_table(ctx, self.table)]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        return [drop_owned_table_preflight(ctx, self.table)]

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.Table(self.table), expect.PartitionOf(self.table, self.parent, self.bounds.is_default)]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        prerequisites = [] if self.parent in earlier.created_tables else [queries.table_exists(self.parent)]
        if not self.bounds.is_default and self.parent not in earlier.created_tables:
            prerequisites.append(CheckQuery(
                f"The DEFAULT partition of {self.parent} (if any) holds no row for {self.table}'s bounds",
                queries.query(S(
                    "SELECT d.inhrelid::pg_catalog.regclass AS default_partition FROM pg_catalog.pg_inherits d\n"
                    "JOIN pg_catalog.pg_class c ON c.oid = d.inhrelid\n"
                    "WHERE d.inhparent = {p} AND pg_catalog.pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'").format(
                    p=regclass(self.parent))),
                "no row, or a default partition you have checked: PostgreSQL refuses the new partition while its "
                "default partition holds rows in the new bounds (and scans it under the lock)"))
        return ChecklistItems(
            prerequisites=prerequisites,
            health_checks=[queries.table_exists(self.table), CheckQuery(
                f"{self.table} is a partition of {self.parent}",
                queries.query(S("SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bounds"
                                " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid"
                                " WHERE c.oid = {c} AND i.inhparent = {p}").format(
                    c=regclass(self.table), p=regclass(self.parent))),
                f"{self.bounds} (as PostgreSQL prints it)")],
            rollback_notes=[f"Partition {self.table} is dropped only if {ctx.label} created it; its rows (written "
                            f"since, through {self.parent}) are copied to the backup schema first."],
            created_tables=[self.table])


__all__ = ["CreatePartition"]
