"""CreateTable: a new table with its constraints and indexes, created atomically if missing.

The table, its inline constraints, indexes and comments are created in one transaction inside a
guard, so a re-run never half-creates anything and never touches a table that already exists.
Optional foreign keys are separate steps (NOT VALID, then VALIDATE) because they may be added by
a later re-run when the table already holds data.
"""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql
from pydantic import field_validator, model_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import FreeText, Identifier, PartitionKeySpec, TableName
from dbdeploy.model.components import Check, Column, Exclusion, ForeignKey, Index, Unique
from dbdeploy.model.names import derived_name, split_table
from dbdeploy.model.static_checks import check_btree_columns, check_foreign_key_types, too_many_columns
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops import constraint_steps as cs
from dbdeploy.ops import existing
from dbdeploy.ops.add_column import column_expect
from dbdeploy.ops.add_foreign_key import foreign_key_expect, foreign_key_steps
from dbdeploy.ops.base import (
    ChecklistItems,
    CheckQuery,
    Operation,
    PartitionFact,
    PlanContext,
    SchemaState,
    TableState,
)
from dbdeploy.ops.common import (
    S,
    copy_to_timestamped_backup,
    forget_owned,
    is_owned,
    notice,
    preflight_dependants,
    record_owned,
    refuse_if_dependants,
    relation_exists,
    relation_missing,
    release_foreign_keys,
    released_foreign_key,
    released_view,
    require_server_version,
    rollback_backup_prefix,
    table_dependants,
)
from dbdeploy.ops.create_index import index_expect
from dbdeploy.ops.ddl import (
    check_body,
    column_def,
    columns_list,
    create_index,
    exclusion_body,
    foreign_key_body,
    named_constraint,
    unique_body,
)
from dbdeploy.sql import ident, literal, qualified, regclass, render
from dbdeploy.sql.blocks import block, do_block, if_then


class CreateTable(Operation):
    kind: ClassVar[str] = "create_table"
    table: TableName
    columns: list[Column]
    primary_key: list[Identifier] = []
    primary_key_name: Identifier | None = None
    foreign_keys: list[ForeignKey] = []
    uniques: list[Unique] = []
    checks: list[Check] = []
    exclusions: list[Exclusion] = []
    indexes: list[Index] = []
    comment: FreeText | None = None
    # PARTITION BY (PostgreSQL docs, "Table Partitioning"): RANGE/LIST/HASH over plain columns; the
    # partitions are CreatePartition operations.
    partition_by: PartitionKeySpec | None = None

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: list[Column]) -> list[Column]:
        if not value:
            raise ValueError("a table needs at least one column — fix: list its columns")
        seen: set[str] = set()
        for column in value:
            if column.name in seen:
                raise ValueError(f"column {column.name!r} is defined twice — fix: remove or rename one of them")
            seen.add(column.name)
        return value

    @model_validator(mode="after")
    def _references(self) -> CreateTable:
        names = {c.name for c in self.columns}

        def need(columns, where: str) -> None:
            missing = sorted(set(columns) - names)
            if missing:
                raise ValueError(f"{where}: refers to unknown column(s) {', '.join(missing)} "
                                 f"(columns: {', '.join(sorted(names))}) — fix: use one of the table's columns, "
                                 "or add the column to columns=[...]")

        crowded = too_many_columns(self.table, len(self.columns))
        if crowded:
            raise ValueError(f"columns: {crowded}")
        need(self.primary_key, "primary_key")
        if self.primary_key_name is not None and not self.primary_key:
            raise ValueError("primary_key_name names a primary key this table does not have — fix: list "
                             "primary_key=[...], or remove primary_key_name")
        generated = {c.name for c in self.columns if c.generated is not None}
        for column in self.columns:
            if column.generated is not None:
                need(column.generated.columns, f"columns[{column.name}].generated")
                reads = sorted(column.generated.columns & generated)
                if reads:
                    raise ValueError(f"columns[{column.name}].generated reads the generated column(s) "
                                     f"{', '.join(reads)} (PostgreSQL refuses it) — fix: compute it from the base "
                                     "columns")
        own = {c.name: c for c in self.columns}
        check_btree_columns("primary_key", self.primary_key, own)
        for i, unique in enumerate(self.uniques):
            check_btree_columns(f"uniques[{i}].columns", unique.columns, own)
        for i, index in enumerate(self.indexes):
            if index.method == "btree":
                check_btree_columns(f"indexes[{i}].columns", index.columns, own)
        if len(set(self.primary_key)) != len(self.primary_key):
            raise ValueError("primary_key lists a column twice — fix: list each column once")
        for i, fk in enumerate(self.foreign_keys):
            need(fk.columns, f"foreign_keys[{i}].columns")
            if fk.references == self.table:
                need(fk.ref_columns, f"foreign_keys[{i}].ref_columns")
                check_foreign_key_types(f"foreign_keys[{i}]", fk.columns, own, fk.references, fk.ref_columns, own)
        for i, unique in enumerate(self.uniques):
            need(unique.columns, f"uniques[{i}].columns")
        for i, check in enumerate(self.checks):
            need(check.columns, f"checks[{i}].expression")
        for i, exclusion in enumerate(self.exclusions):
            need(exclusion.referenced_columns, f"exclusions[{i}]")
        for i, fk in enumerate(self.foreign_keys):
            if not fk.validate and not fk.optional:
                raise ValueError(f"foreign_keys[{i}]: validate=False has no effect on a new table (it is empty, so "
                                 "PostgreSQL marks the foreign key valid at once) — fix: leave validate out, or add "
                                 "the foreign key to an existing table with AddForeignKey(validate=False)")
        for i, index in enumerate(self.indexes):
            need(index.referenced_columns, f"indexes[{i}]")
        if self.partition_by is not None:
            self._check_partitioning(need)
        constraint_names = ([self.pk_name] if self.primary_key else []) + [
            c.resolved_name(self.table) for c in (*self.foreign_keys, *self.uniques, *self.checks,
                                                  *self.exclusions)]
        relation_names = ([self.pk_name] if self.primary_key else []) + [
            u.resolved_name(self.table) for u in (*self.uniques, *self.exclusions)] + [
            i.resolved_name(self.table) for i in self.indexes]
        for group in (constraint_names, relation_names):
            dupes = sorted({n for n in group if group.count(n) > 1})
            if dupes:
                raise ValueError(f"name(s) {', '.join(dupes)} used twice in this table — fix: give distinct names")
        return self

    def _check_partitioning(self, need) -> None:
        """PostgreSQL's rules for a partitioned table, refused here instead of at apply (PostgreSQL docs,
        "Table Partitioning", Limitations): unique keys include every partition column; no exclusion
        constraint (before 17 none at all); no generated key column."""
        key = self.partition_by.columns
        need(key, "partition_by")
        keyed = [("primary_key", self.primary_key)] if self.primary_key else []
        keyed += [(f"uniques[{i}]", u.columns) for i, u in enumerate(self.uniques)]
        keyed += [(f"indexes[{i}]", i_.columns) for i, i_ in enumerate(self.indexes) if i_.unique]
        for where, columns in keyed:
            missing = [c for c in key if c not in columns]
            if missing:
                raise ValueError(f"{where}: a unique key of a partitioned table must include every partition "
                                 f"column (PostgreSQL refuses it otherwise); missing {', '.join(missing)} — fix: add "
                                 "them to the key, or drop the key")
        if self.exclusions:
            raise ValueError("exclusions on a partitioned table are not supported by dbdeploy — fix: declare them "
                             "on each partition, or drop partition_by")
        generated = [c.name for c in self.columns if c.name in key and c.generated is not None]
        if generated:
            raise ValueError(f"partition_by uses the generated column(s) {', '.join(generated)} (PostgreSQL refuses "
                             "it) — fix: partition by a base column")

    def apply(self, state: SchemaState) -> None:
        if self.table in state.tables:
            raise ValueError(f"table {self.table} is already created by an earlier operation — fix: remove this "
                             "CreateTable, or change the table with AddColumn and friends")
        schema = split_table(self.table)[0]
        state.claim(self.table, "table", self.table)
        if self.primary_key:
            state.claim(f"{schema}.{self.pk_name}", "the primary key", self.table)
        for unique in self.uniques:
            state.claim(f"{schema}.{unique.resolved_name(self.table)}", "a unique constraint", self.table)
        for exclusion in self.exclusions:
            state.claim(f"{schema}.{exclusion.resolved_name(self.table)}", "an exclusion constraint", self.table)
        constraints = {c.resolved_name(self.table) for c in (*self.foreign_keys, *self.uniques, *self.checks,
                                                             *self.exclusions)}
        if self.primary_key:
            constraints.add(self.pk_name)
        state.tables[self.table] = TableState(
            columns={c.name: c for c in self.columns}, primary_key=list(self.primary_key),
            constraints=constraints, uniques={u.resolved_name(self.table): tuple(u.columns) for u in self.uniques},
            nulls_not_distinct=frozenset(u.resolved_name(self.table) for u in self.uniques if u.nulls_not_distinct))
        for i, fk in enumerate(self.foreign_keys):
            if fk.references != self.table:
                state.require_columns(fk.references, fk.ref_columns, "foreign_keys.ref_columns")
                referenced = state.tables.get(fk.references)
                check_foreign_key_types(f"foreign_keys[{i}]", fk.columns, {c.name: c for c in self.columns},
                                        fk.references, fk.ref_columns, referenced and referenced.columns)
        for index in self.indexes:
            name = index.qualified_name(self.table)
            state.claim(name, "an index", self.table)
            state.indexes[name] = (self.table, index)
        for fk in self.foreign_keys:
            state.add_foreign_key(self.table, fk)
        for check in self.checks:
            state.add_check(self.table, check)
        if self.partition_by is not None:
            state.partitions[self.table] = PartitionFact(key=self.partition_by)

    @property
    def pk_name(self) -> str:
        """``primary_key_name``, else PostgreSQL's default ``<table>_pkey`` (shortened as dbdeploy's
        derived names are when over 63 bytes)."""
        return self.primary_key_name or derived_name(split_table(self.table)[1], suffix="pkey")

    def _elements(self, *, foreign_keys: bool = True) -> list:
        elements = [column_def(c) for c in self.columns]
        if self.primary_key:
            elements.append(named_constraint(self.pk_name, S("PRIMARY KEY ({})").format(
                columns_list(self.primary_key))))
        for unique in self.uniques:
            elements.append(named_constraint(unique.resolved_name(self.table), unique_body(unique)))
        for check in self.checks:
            elements.append(named_constraint(check.resolved_name(self.table), check_body(check)))
        for exclusion in self.exclusions:
            elements.append(named_constraint(exclusion.resolved_name(self.table), exclusion_body(exclusion)))
        for fk in self.foreign_keys:
            if foreign_keys and not fk.optional:
                elements.append(named_constraint(fk.resolved_name(self.table), foreign_key_body(fk)))
        return elements

    def _create_statement(self):
        inner = S(",\n    ").join(self._elements())
        if self.partition_by is not None:
            return S("CREATE TABLE {t} (\n    {inner}\n) PARTITION BY {key};").format(
                t=qualified(self.table), inner=inner, key=self.partition_by.sql())
        return S("CREATE TABLE {t} (\n    {inner}\n);").format(t=qualified(self.table), inner=inner)

    def forward(self, ctx: PlanContext) -> list[Step]:
        statements = [self._create_statement()]
        statements += [S("{};").format(create_index(self.table, i, concurrently=False, if_not_exists=False))
                       for i in self.indexes]
        if self.comment is not None:
            statements.append(S("COMMENT ON TABLE {} IS {};").format(qualified(self.table), literal(self.comment)))
        for column in self.columns:
            if column.comment is not None:
                statements.append(S("COMMENT ON COLUMN {} IS {};").format(
                    ident(*split_table(self.table), column.name), literal(column.comment)))
        statements.append(record_owned(ctx, "table", self.table))
        if any(u.nulls_not_distinct for u in self.uniques) or any(i.nulls_not_distinct for i in self.indexes):
            statements.insert(0, require_server_version(
                ctx, 150000, f"UNIQUE NULLS NOT DISTINCT (table {self.table})",
                "Run this migration on PostgreSQL 15 or later, or remove nulls_not_distinct from the spec."))
        body = if_then(relation_exists(self.table),
                       if_then(is_owned(ctx, "table", self.table),
                               notice(ctx, f"table {self.table} was created by {ctx.label} already; not created again"),
                               otherwise=[self._check_existing(ctx)]),
                       otherwise=statements)
        steps = [Step(self.kind, self.table, "ACCESS EXCLUSIVE", True, do_block(body, declare=existing.DECLARE),
                      f"create table {self.table} with its constraints and indexes")]
        for fk in self.foreign_keys:
            if fk.optional:
                steps += foreign_key_steps(ctx, self.table, fk)
        return scaled(steps, "constant (new, empty table)", queries.NOT_VALID,
                      f"proportional to the rows of {self.table} (none when it was just created)")

    def _check_existing(self, ctx: PlanContext):
        """PL/pgSQL: a table of this name that dbdeploy did not create must have exactly the spec's
        columns, constraints and indexes (compared through a probe, see :mod:`dbdeploy.ops.existing`),
        or the step stops with every difference."""
        probe_indexes = {i.resolved_name(self.table): f"dbdeploy_probe_idx_{n}" for n, i in enumerate(self.indexes, 1)}
        probed = ([self.pk_name] if self.primary_key else []) + [
            c.resolved_name(self.table) for c in (*self.uniques, *self.checks, *self.exclusions)]
        texts = {fk.resolved_name(self.table): existing.foreign_key_text(fk) for fk in self.foreign_keys
                 if not fk.optional}
        return block(
            existing.relation_kind_differs(self.table),
            existing.probe_with(S(",\n    ").join(self._elements(foreign_keys=False))),
            *[S("{};").format(create_index(self.table, i, concurrently=False, if_not_exists=False,
                                           name=probe_indexes[i.resolved_name(self.table)], on=existing.PROBE))
              for i in self.indexes],
            existing.compare_columns(self.table),
            existing.compare_constraints(self.table, probed=probed, texts=texts, all_of_table=True,
                                         ignore=[fk.resolved_name(self.table) for fk in self.foreign_keys
                                                 if fk.optional]),
            existing.compare_table_indexes(self.table, probe_indexes),
            self._compare_partition_key(),
            existing.drop_probe(),
            existing.refuse_if_different(ctx, f"table {self.table}"),
            notice(ctx, f"table {self.table} exists and matches the spec; not created again"),
        )

    def _compare_partition_key(self) -> sql.Composable:
        """Append to ``v_diff`` a partition key (``pg_get_partkeydef``) other than the spec's, or none."""
        expected = literal(self.partition_by) if self.partition_by is not None else S("NULL")
        return S("v_diff := v_diff || ARRAY(SELECT 'partitioned by ' || COALESCE(k, 'nothing') || ', expected '"
                 " || COALESCE({e}, 'no partitioning') FROM (SELECT pg_catalog.pg_get_partkeydef({rel}) AS k) s"
                 " WHERE k IS DISTINCT FROM {e});").format(e=expected, rel=regclass(self.table))

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        entries: list[expect.Expectation] = [expect.Table(self.table)]
        if self.partition_by is not None:
            entries.append(expect.PartitionKey(self.table, str(self.partition_by)))
        entries += [column_expect(self.table, c, not_null=not c.nullable or c.name in self.primary_key)
                    for c in self.columns]
        if self.primary_key:
            entries.append(expect.Constraint(self.table, self.pk_name, columns=tuple(self.primary_key),
                                             constraint_kind="p", key=tuple(self.primary_key)))
        for unique in self.uniques:
            entries.append(expect.Constraint(self.table, unique.resolved_name(self.table),
                                             columns=tuple(unique.columns), constraint_kind="u",
                                             key=tuple(unique.columns), nulls_not_distinct=unique.nulls_not_distinct))
        for check in self.checks:
            entries.append(expect.Constraint(self.table, check.resolved_name(self.table), columns=tuple(check.columns),
                                             constraint_kind="c", expression=check.expression))
        for exclusion in self.exclusions:
            entries.append(expect.Constraint(self.table, exclusion.resolved_name(self.table),
                                             columns=tuple(sorted(exclusion.referenced_columns)), constraint_kind="x"))
        for fk in self.foreign_keys:
            entries.append(foreign_key_expect(self.table, fk))
        entries += [index_expect(self.table, i) for i in self.indexes]
        return entries

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        schema, name = split_table(self.table)
        prerequisites: list[CheckQuery] = []
        notes: list[str] = []
        if schema not in earlier.created_schemas:
            prerequisites.append(queries.schema_exists(
                schema, f"Schema {schema} exists (created by an earlier migration or by hand)"))
        for fk in self.foreign_keys:
            if fk.references == self.table or fk.references in earlier.created_tables:
                continue
            fk_name = fk.resolved_name(self.table)
            if fk.optional:
                prerequisites.append(queries.optional_table_exists(fk_name, fk.references))
                notes.append(f"Foreign key {fk_name} ({self.table} → {fk.references}) is optional: while "
                             f"{fk.references} is missing it is skipped with a NOTICE. Once it exists, running the "
                             "forward file again with psql adds it (NOT VALID, then VALIDATE: a scan of the rows "
                             f"{self.table} holds by then).")
            else:
                prerequisites.append(queries.table_exists(fk.references, f"referenced by foreign key {fk_name}"))
        health = [queries.table_exists(self.table),
                  queries.columns_state(self.table, [(c.name, not c.nullable or c.name in self.primary_key)
                                                    for c in self.columns])]
        constraints = ([self.pk_name] if self.primary_key else []) + [
            c.resolved_name(self.table) for c in (*self.uniques, *self.checks, *self.exclusions)] + [
            fk.resolved_name(self.table) for fk in self.foreign_keys if not fk.optional]
        if constraints:
            health.append(queries.constraints_validated(self.table, constraints))
        health += [queries.optional_constraint_validated(self.table, fk.resolved_name(self.table), fk.references)
                   for fk in self.foreign_keys if fk.optional and fk.validate]
        notes += [f"Foreign key {fk.resolved_name(self.table)} is left NOT VALID on purpose (validate=False): rows "
                  "already in the table are not checked, new writes are. Validate it later by hand or with a later "
                  "migration." for fk in self.foreign_keys if not fk.validate]
        if self.indexes:
            health.append(queries.indexes_valid(self.table, [i.qualified_name(self.table) for i in self.indexes]))
        prefix = rollback_backup_prefix(ctx.version, name)
        return ChecklistItems(
            prerequisites=prerequisites, health_checks=health, notes=notes,
            rollback_notes=[f"Table {self.table} is dropped only if {ctx.label} created it; its rows are copied to "
                            f"{ctx.backup_schema}.{prefix}_<timestamp> first."],
            created_tables=[self.table])

    def rollback(self, ctx: PlanContext) -> list[Step]:
        steps = [cs.drop_constraint(ctx, self.table, fk.resolved_name(self.table))
                 for fk in reversed(self.foreign_keys) if fk.optional]
        steps.append(drop_owned_table(ctx, self.table))
        return steps

    def rollback_preflight(self, ctx: PlanContext) -> list:
        return [drop_owned_table_preflight(ctx, self.table)]


def drop_owned_table_preflight(ctx: PlanContext, table: str):
    """The refusal of :func:`drop_owned_table`, checked before the rollback changes anything.

    Foreign keys the rollback removes itself (from the other tables it drops, or added by this
    version) do not count; views and everyone else's foreign keys do, all named in one message.
    """
    return preflight_dependants(
        ctx, f"table {table}", table_dependants(table, released_foreign_key(ctx), released_view(ctx)),
        when=S("{} AND {}").format(relation_exists(table), is_owned(ctx, "table", table)))


def drop_owned_table(ctx: PlanContext, table: str) -> Step:
    """Drop a table this migration created: refuse on dependants, copy its rows out first."""
    body = block(
        if_then(relation_missing(table), notice(ctx, f"table {table} is already gone"), S("RETURN;")),
        if_then(S("NOT {}").format(is_owned(ctx, "table", table)),
                notice(ctx, f"table {table} was not created by {ctx.label}; left in place"), S("RETURN;")),
        release_foreign_keys(ctx, table),
        refuse_if_dependants(ctx, f"table {table}", table_dependants(table)),
        if_then(S("EXISTS (SELECT 1 FROM {})").format(qualified(table)),
                copy_to_timestamped_backup(ctx, split_table(table)[1],
                                           S("SELECT * FROM {}").format(qualified(table)),
                                           f"the rows of {table}")),
        S("DROP TABLE {};").format(qualified(table)),
        forget_owned(ctx, "table", table),
    )
    return Step("drop_table", table, "ACCESS EXCLUSIVE", True,
                do_block(body, declare=["v_dependants text", "v_backup text", "v_fk record"]),
                f"drop table {table} (rows copied to the backup schema first)")


__all__ = ["CreateTable", "drop_owned_table", "drop_owned_table_preflight", "render"]
