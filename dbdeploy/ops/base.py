"""The interface every operation implements, and the data it works with.

Each operation is a plain Pydantic data object (like Alembic's ops) that knows how to validate
itself against what the specs have built so far, which forward steps it needs and which steps
undo it (like pgroll's Start/Rollback). The bundle renderer never looks inside an operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import ClassVar

from psycopg import sql
from pydantic import field_validator

from dbdeploy.bundle.expectations import Expectation
from dbdeploy.bundle.schemas import BACKUP_SCHEMA, HISTORY_SCHEMA
from dbdeploy.bundle.step import Step
from dbdeploy.model.allow import check_allow
from dbdeploy.model.base import SpecModel, record_source
from dbdeploy.model.components import Column, Index
from dbdeploy.sql.parse import not_null_test_column, parse_expression


@dataclass
class TableState:
    """What the specs have said about a table so far.

    Replaced, never changed in place, once it is in a :class:`SchemaState` (copy-on-write: planning and
    lint keep a shallow snapshot of the state per operation).
    """

    columns: dict[str, Column] = field(default_factory=dict)
    primary_key: list[str] = field(default_factory=list)
    constraints: set[str] = field(default_factory=set)   # every constraint name the specs gave the table
    uniques: dict[str, tuple[str, ...]] = field(default_factory=dict)   # unique constraint name → its columns
    nulls_not_distinct: frozenset[str] = frozenset()   # the names in ``uniques`` that are UNIQUE NULLS NOT DISTINCT


@dataclass(frozen=True)
class Position:
    """Where the walk is: the migration's version and the operation's index in it (0-based)."""

    version: str = ""
    index: int = -1


@dataclass(frozen=True)
class ForeignKeyFact:
    """A foreign key an operation added (CreateTable, AddForeignKey), and where it was added."""

    table: str
    name: str
    columns: tuple[str, ...]
    references: str
    ref_columns: tuple[str, ...]
    version: str
    index: int              # operation index (0-based) in its migration


@dataclass(frozen=True)
class CheckFact:
    """A CHECK constraint an operation added (CreateTable, AddCheck); validated when the operation ends.

    ``not_null_column`` is ``c`` for ``CHECK (c IS NOT NULL)``: with it validated, ``SET NOT NULL`` on ``c``
    needs no scan.
    """

    table: str
    name: str
    expression: str
    columns: frozenset[str]
    not_null_column: str | None


@dataclass(frozen=True)
class PartitionFact:
    """What the specs know of a table's partitioning (``SchemaState.partitions``, by table): ``key`` (a
    :class:`~dbdeploy.sql.PartitionKey`) when the table is partitioned, ``parent`` when it is a partition."""

    key: object | None = None
    parent: str | None = None
    default: bool = False     # a partition: its parent's DEFAULT partition


@lru_cache(maxsize=4096)
def _expression_columns(text: str) -> frozenset[str]:
    return parse_expression(text).columns


@dataclass
class SchemaState:
    """The schema as built by the specs in version order: advanced once per operation by the
    operation's own ``apply`` (in :func:`dbdeploy.ops.walk.walk`), read by validation, planning and lint.

    Tables that the specs never created (pre-existing ones) are simply unknown: references
    to them are not checked, because the database, not the specs, is the truth for them. Foreign keys
    and checks are recorded for them too (keyed by table and constraint name): lint reads them.

    Everything in it is replaced, never changed in place, so :meth:`copy` can be shallow.
    """

    tables: dict[str, TableState] = field(default_factory=dict)
    indexes: dict[str, tuple[str, Index]] = field(default_factory=dict)
    # Every relation the specs created, by qualified name → (kind, table): tables, indexes and the
    # indexes behind primary keys and unique constraints share one namespace per schema.
    relations: dict[str, tuple[str, str]] = field(default_factory=dict)
    # (table, constraint name) → what the operations added; dropped with their table or column.
    foreign_keys: dict[tuple[str, str], ForeignKeyFact] = field(default_factory=dict)
    checks: dict[tuple[str, str], CheckFact] = field(default_factory=dict)
    # Room for the objects the next operations add (by qualified name → their definition).
    sequences: dict[str, object] = field(default_factory=dict)
    views: dict[str, object] = field(default_factory=dict)
    types: dict[str, object] = field(default_factory=dict)
    functions: dict[str, object] = field(default_factory=dict)
    partitions: dict[str, object] = field(default_factory=dict)
    # Expansions (``online=True`` operations, see ops/expansion.py) not contracted yet:
    # version → the expanding operations of that version, in order.
    expansions: dict[str, tuple] = field(default_factory=dict)
    # What DropTable/DropColumn removed, in order: (table, column or "" for the whole table). Lint uses it
    # to forget what RawSQL told it about the dropped table or column.
    dropped: tuple[tuple[str, str], ...] = ()
    # True when built from every earlier spec (generation); False while one migration is
    # validated on its own, where objects from earlier migrations are simply not known yet.
    complete: bool = False
    # Tables a RawSQL operation may have changed in ways the specs cannot see (its SQL mentions the
    # table or one of its indexes): what the specs say about their keys is then not the whole truth.
    raw_changed: frozenset[str] = frozenset()
    # The operation being applied (set by the walk): recorded with the foreign keys it adds.
    at: Position = Position()

    def copy(self) -> SchemaState:
        """The state before an operation, for that operation's forward/rollback rendering.

        Shallow on purpose: columns and indexes are immutable models, and apply() methods replace a
        TableState rather than change it in place (copy-on-write), so copying the top-level mappings
        gives an independent snapshot (a deep copy per operation made planning quadratic).
        """
        return SchemaState(tables=dict(self.tables), indexes=dict(self.indexes), relations=dict(self.relations),
                           foreign_keys=dict(self.foreign_keys), checks=dict(self.checks),
                           sequences=dict(self.sequences), views=dict(self.views), types=dict(self.types),
                           functions=dict(self.functions), partitions=dict(self.partitions),
                           expansions=dict(self.expansions), dropped=self.dropped,
                           complete=self.complete, raw_changed=self.raw_changed, at=self.at)

    def claim(self, name: str, kind: str, table: str) -> None:
        """Register a relation name, refusing one an earlier operation already uses."""
        if name in self.relations:
            other_kind, other_table = self.relations[name]
            raise ValueError(f"{name} is already used by {other_kind} of {other_table}; relation names are "
                             "shared by tables, indexes and constraint indexes within a schema — fix: pick another "
                             "name")
        self.relations[name] = (kind, table)

    def add_foreign_key(self, table: str, fk) -> None:
        """Record foreign key ``fk`` (a :class:`~dbdeploy.model.components.ForeignKey`) of ``table``, added
        at :attr:`at`."""
        name = fk.resolved_name(table)
        self.foreign_keys[(table, name)] = ForeignKeyFact(table, name, tuple(fk.columns), fk.references,
                                                          tuple(fk.ref_columns), self.at.version, self.at.index)

    def add_check(self, table: str, check) -> None:
        """Record CHECK ``check`` (a :class:`~dbdeploy.model.components.Check`) of ``table``."""
        name = check.resolved_name(table)
        self.checks[(table, name)] = CheckFact(table, name, check.expression, _expression_columns(check.expression),
                                               not_null_test_column(check.expression))

    def not_null_checks(self, table: str) -> dict[str, str]:
        """The validated ``CHECK (c IS NOT NULL)`` constraints of ``table``: constraint name → c."""
        return {name: fact.not_null_column for (owner, name), fact in self.checks.items()
                if owner == table and fact.not_null_column}

    def forget_table(self, table: str) -> None:
        """A dropped table takes its columns, indexes, constraints and relation names along."""
        self.tables.pop(table, None)
        self.relations = {n: v for n, v in self.relations.items() if v[1] != table}
        self.indexes = {n: v for n, v in self.indexes.items() if v[0] != table}
        self.foreign_keys = {k: v for k, v in self.foreign_keys.items() if v.table != table}
        self.checks = {k: v for k, v in self.checks.items() if v.table != table}
        self.dropped = (*self.dropped, (table, ""))

    def forget_column(self, table: str, column: str) -> None:
        """Dropping a column takes the indexes and constraints (unique, foreign key, check) that use it along."""
        known = self.tables.get(table)
        if known is not None and any(column in cols for cols in known.uniques.values()):
            self.tables[table] = replace(known, uniques={n: c for n, c in known.uniques.items() if column not in c})
        if known is not None:
            for name, (owner, index) in list(self.indexes.items()):
                if owner == table and column in index.referenced_columns:
                    del self.indexes[name]
                    self.relations.pop(name, None)
        self.foreign_keys = {k: v for k, v in self.foreign_keys.items()
                             if not (v.table == table and column in v.columns)}
        self.checks = {k: v for k, v in self.checks.items() if not (v.table == table and column in v.columns)}
        self.dropped = (*self.dropped, (table, column))

    def open_expansion(self, op) -> None:
        """Record ``op`` (an :class:`~dbdeploy.ops.expansion.Expands` run with ``online=True``) as an
        expansion of the version being applied (:attr:`at`), for a later ``Contract`` to close."""
        self.expansions[self.at.version] = (*self.expansions.get(self.at.version, ()), op)

    def register_constraint(self, table: str, name: str, what: str) -> None:
        """Record constraint ``name`` on ``table`` (a table the specs created; others are not known),
        refusing a name the table already has: ValueError naming ``what`` (the spec field) and the fix."""
        tbl = self.tables.get(table)
        if tbl is None:
            return
        if name in tbl.constraints:
            raise ValueError(f"{what}: {table} already has a constraint named {name!r} — fix: pick another name")
        self.tables[table] = replace(tbl, constraints=tbl.constraints | {name})   # copy-on-write, see copy()

    def refuse_partitioned(self, table: str, what: str) -> None:
        """Raise ValueError (reason — fix) when the specs made ``table`` partitioned: ``what`` (e.g.
        "CreateIndex") runs a form PostgreSQL refuses on a partitioned table — an index built
        CONCURRENTLY ("cannot create index on partitioned table … concurrently"), DROP INDEX CONCURRENTLY,
        a NOT VALID foreign key before PostgreSQL 18 — refused here at generate instead of at apply."""
        fact = self.partitions.get(table)
        if fact is not None and fact.key is not None:
            raise ValueError(f"{table} is partitioned, and {what} uses a form PostgreSQL refuses on a partitioned "
                             "table (CONCURRENTLY, or a NOT VALID foreign key) — fix: declare it in the table's "
                             "CreateTable (it is created empty), or use RawSQL: CREATE INDEX … ON ONLY the parent, "
                             "CREATE INDEX CONCURRENTLY on each partition, then ALTER INDEX … ATTACH PARTITION")

    def require_columns(self, table: str, columns, what: str) -> None:
        """Raise ValueError when ``table`` is known and lacks one of ``columns`` (``what`` names the field)."""
        state = self.tables.get(table)
        if state is None:
            return
        missing = sorted(set(columns) - set(state.columns))
        if missing:
            known = ", ".join(sorted(state.columns)) or "none"
            raise ValueError(
                f"{what} refers to column(s) {', '.join(missing)} that {table} does not have "
                f"(its columns: {known}) — fix: use one of its columns, or add the column first (AddColumn)")


@dataclass(frozen=True)
class PlanContext:
    """What an operation needs to know to render its steps."""

    version: str
    migration_name: str
    index: int                   # position of the operation in the migration (1-based)
    state: SchemaState           # schema before this operation
    history_schema: str = HISTORY_SCHEMA
    backup_schema: str = BACKUP_SCHEMA
    # Tables this migration's rollback drops (the tables the migration creates). A rollback step on
    # such a table's rows (seed delete, backfill restore) is skipped: the drop copies every row out.
    rollback_drops: frozenset[str] = frozenset()
    # Columns ("schema.table.column") that AddColumn operations of this migration add: its rollback
    # drops them (when this version added them), so a backfill of only such columns restores nothing.
    rollback_drops_columns: frozenset[str] = frozenset()

    @property
    def label(self) -> str:
        return f"V{self.version}"

    # Relations ("schema.name") and constraints ("schema.table.name") that the RawSQL rollbacks of
    # this migration's later operations drop before this operation's rollback runs (read with
    # pglast), so the preflight does not refuse on what the rollback removes itself.
    rollback_removes: frozenset[str] = frozenset()
    # The operations after this one in the migration (their rollbacks run before this one's).
    later_ops: tuple = ()


@dataclass(frozen=True)
class CheckQuery:
    """One query for the deployment checklist and the single result it should give.

    ``expected`` is the value the query returns when all is well (``"0"``, ``"true"``, ``"2"``)
    or ``"no rows"``; ``otherwise`` explains a different result that is not an error (an optional
    foreign key whose table does not exist yet). Queries are composed with psycopg.sql.
    """

    title: str
    sql: str
    expected: str
    otherwise: str = ""
    key: str = ""           # de-duplication key (defaults to the SQL); a later entry replaces an earlier one
    scans: bool = False     # reads a whole table (violating-row counts)

    @property
    def dedupe_key(self) -> str:
        return self.key or self.sql


@dataclass(frozen=True)
class ColumnValue:
    """A column's value after an operation, as SQL over the table's columns before it."""

    column: str
    expression: sql.Composable = field(compare=False)  # spec expressions (.sql()) composed with psycopg.sql
    reads: frozenset[str]


@dataclass(frozen=True)
class DataChange:
    """How an operation changes a table's existing rows (a new column, a backfill), so that later
    operations of the same migration can check the data as it will be when they run."""

    table: str
    values: tuple[ColumnValue, ...]


@dataclass(frozen=True)
class SeededRows:
    table: str
    rows: tuple              # tuple of dicts: column → Python value


@dataclass
class ChecklistItems:
    """One operation's contribution to ``deployment_checklist.md`` (merged in operation order).

    The first group is rendered; the second tells later operations of the same migration what
    this one creates or changes (a foreign key to a table seeded earlier in the migration is
    checked against the seeded rows).
    """

    backups: list[str] = field(default_factory=list)               # existing tables to pg_dump first
    prerequisites: list[CheckQuery] = field(default_factory=list)
    health_checks: list[CheckQuery] = field(default_factory=list)
    watch: list[CheckQuery] = field(default_factory=list)          # progress queries for long steps
    notes: list[str] = field(default_factory=list)                 # pre-deployment notes
    rollback_notes: list[str] = field(default_factory=list)
    created_schemas: list[str] = field(default_factory=list)
    created_tables: list[str] = field(default_factory=list)
    changes: list[DataChange] = field(default_factory=list)
    seeds: list[SeededRows] = field(default_factory=list)
    not_null_pending: list[str] = field(default_factory=list)     # "table.column" made NOT NULL after a fill

    # where each kept entry is, per list: value (or query key) -> position (merging stays linear)
    _positions: dict[str, dict] = field(default_factory=dict, init=False, repr=False, compare=False)

    _UNIQUE = ("backups", "notes", "rollback_notes", "created_schemas", "created_tables", "not_null_pending")
    _QUERIES = ("prerequisites", "health_checks", "watch")

    @classmethod
    def merged(cls, parts) -> ChecklistItems:
        """Contributions in operation order; repeated entries are kept once (queries by key, the
        later one replacing the earlier in its place)."""
        out = cls()
        for part in parts:
            out.add(part)
        return out

    def add(self, part: ChecklistItems) -> None:
        """Merge one more operation's contribution into this one (see :meth:`merged`), in time
        linear in the part's size: a migration of thousands of operations merges each once."""
        for name in self._UNIQUE + self._QUERIES:
            target = getattr(self, name)
            where = self._positions.get(name)
            if where is None or len(where) != len(target):     # built here, or lists set by hand
                where = self._positions[name] = {
                    (v.dedupe_key if name in self._QUERIES else v): i for i, v in enumerate(target)}
            for value in getattr(part, name):
                key = value.dedupe_key if name in self._QUERIES else value
                if key not in where:
                    where[key] = len(target)
                    target.append(value)
                elif name in self._QUERIES:
                    target[where[key]] = value
        self.changes += part.changes
        self.seeds += part.seeds


class Operation(SpecModel):
    """Base class of every DSL operation."""

    kind: ClassVar[str]
    destructive: ClassVar[bool] = False

    # Lint findings this operation accepts: rule id → why it is safe here (shown in the checklist).
    allow: dict[str, str] = {}

    @field_validator("allow")
    @classmethod
    def _allow(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            return value
        return check_allow(value)

    def model_post_init(self, context: object, /) -> None:
        # the spec line it is built at (kept by the loader, outside the model: equality unchanged)
        record_source(self)

    def apply(self, state: SchemaState) -> None:
        """Validate against ``state`` (raise ValueError: reason — fix) and record this operation's effect on
        it: everything later operations, planning and lint may ask about (tables, columns, keys, uniques,
        foreign keys, checks, indexes, …). Called exactly once per operation, by :func:`dbdeploy.ops.walk.walk`.
        Replace a TableState or inner mapping, never change one in place (see :meth:`SchemaState.copy`)."""

    def check_later(self, later_ops: tuple) -> None:
        """Validate against the operations after this one in the same migration (``later_ops``); raise
        ValueError (reason — fix). Default: nothing to check."""

    def forward(self, ctx: PlanContext) -> list[Step]:
        raise NotImplementedError

    def rollback(self, ctx: PlanContext) -> list[Step]:
        raise NotImplementedError

    def rollback_preflight(self, ctx: PlanContext) -> list[sql.Composable]:
        """PL/pgSQL statements that raise (``common.fail``) under every condition on which this
        operation's rollback would refuse; the rollback's first step runs them all before its first
        change, so a refused rollback changes nothing. Default: no condition."""
        return []

    def expects(self, ctx: PlanContext) -> list[Expectation]:
        """What the database holds after this operation, for ``dbdeploy verify`` and generated tests.

        Typed entries, one dataclass per kind (:mod:`dbdeploy.bundle.expectations`), each checked by
        its ``check_<kind>`` in :mod:`dbdeploy.bundle.catalog_checks`; the planner serializes them
        into the manifest. A later migration's entry for the same object replaces an earlier one.
        """
        return []

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        """This operation's part of the bundle's ``deployment_checklist.md``.

        ``earlier`` is the merged contribution of the migration's earlier operations (what they
        create, seed and change), so pre-deployment queries can check the data as it will be when
        this operation runs. Every SQL text is composed with psycopg.sql, never formatted.
        """
        return ChecklistItems()

    def target(self) -> str:
        return getattr(self, "table", "")

    def describe(self) -> str:
        return f"{self.kind} {self.target()}".strip()
