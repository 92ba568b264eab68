"""Typed expectations: what the database holds after an operation, one frozen dataclass per kind.

Operations return them from ``Operation.expects`` (dbdeploy/ops); the planner serializes them
with :func:`to_json` into the manifest's ``"expects"`` list and the generated pytest file. There
they are plain JSON objects, ``{"object": <kind>, ..., "present": bool}``, read by
:mod:`dbdeploy.bundle.catalog_checks` — which ``dbdeploy verify`` imports and every generated test
file embeds — through one ``check_<kind>`` function per kind (:data:`KINDS` names them all; a
kind the checks do not know raises there, never passes).

They carry what a reviewer would check by hand: types, nullability, defaults, identity,
constraint definitions, index keys, seed keys and values, what a backfill wrote.

This module is imported by the executor, so it imports only the standard library: no pydantic,
no pglast. Values that need parsing (a RawSQL verify query's relations, a default's safe form)
are computed by the operation at plan time and passed in.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar


@dataclass(frozen=True)
class Expectation:
    """Base of every kind. ``kind`` is the JSON ``"object"`` value; ``present`` False means the
    object must be absent (dropped)."""

    kind: ClassVar[str] = ""

    def to_json(self) -> dict:
        """The manifest / generated-test entry: ``{"object": kind, <fields>, "present": bool}``."""
        raise NotImplementedError

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        """What the version's rollback leaves of this expectation (the generated tests' ``-m rolled_back``
        group). Default: nothing to check (e.g. an extension, a RawSQL verify query)."""
        return ()


@dataclass(frozen=True)
class Rollback:
    """What one version's rollback leaves, for :meth:`Expectation.after_rollback`: ``created_tables``
    (the tables the version created: its rollback drops them whole, so what lies inside them is not
    checked one by one), dbdeploy's schemas, and ``seed_backup_prefix`` (table → the fixed part of the
    name of the backup the rollback copies removed seed rows to)."""

    version: str
    created_tables: frozenset[str]
    backup_schema: str
    history_schema: str
    seed_backup_prefix: Callable[[str], str]

    @classmethod
    def of(cls, version: str, expects: list[Expectation], backup_schema: str, history_schema: str,
           seed_backup_prefix: Callable[[str], str]) -> Rollback:
        """The rollback of the version whose forward ``expects`` lists."""
        created = frozenset(e.name for e in expects if isinstance(e, Table) and e.present)
        return cls(version, created, backup_schema, history_schema, seed_backup_prefix)


def after_rollback(expects: list[Expectation], rollback: Rollback) -> list[Expectation]:
    """Every expectation's :meth:`Expectation.after_rollback`, in order."""
    return [after for e in expects for after in e.after_rollback(rollback)]


@dataclass(frozen=True)
class Schema(Expectation):
    """Schema ``name`` exists (or not)."""

    kind: ClassVar[str] = "schema"
    name: str
    present: bool = True
    # after a rollback: the version whose rollback removes it and dbdeploy's history schema, so a
    # schema that existed before that version (not recorded as created by it) may rightly stay
    version: str | None = None
    history_schema: str | None = None

    def to_json(self) -> dict:
        entry = {"object": self.kind, "name": self.name, "present": self.present}
        if self.version is not None:
            entry.update(version=self.version, history_schema=self.history_schema)
        return entry

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        if not self.present or self.name == "public":
            return ()
        return (Schema(self.name, False, version=rollback.version, history_schema=rollback.history_schema),)


@dataclass(frozen=True)
class Extension(Expectation):
    """Extension ``name`` is installed (or not)."""

    kind: ClassVar[str] = "extension"
    name: str
    present: bool = True

    def to_json(self) -> dict:
        return {"object": self.kind, "name": self.name, "present": self.present}


@dataclass(frozen=True)
class Table(Expectation):
    """Table ``name`` (schema-qualified) exists (or not)."""

    kind: ClassVar[str] = "table"
    name: str
    present: bool = True

    def to_json(self) -> dict:
        return {"object": self.kind, "name": self.name, "present": self.present}

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        return (replace(self, present=not self.present),)


@dataclass(frozen=True)
class Column(Expectation):
    """Column ``table.name``. With ``type_name`` (a present column the spec defines) the check also
    compares type, default (``default`` in its DEFAULT-safe form, see ``dbdeploy.sql.column_default``),
    identity and NOT NULL, each as PostgreSQL spells it."""

    kind: ClassVar[str] = "column"
    table: str
    name: str
    present: bool = True
    not_null: bool | None = None
    type_name: str | None = None
    default: str | None = None
    identity: bool = False
    # issue 12 options, in the JSON only when set: GENERATED ALWAYS AS IDENTITY, a stored generated
    # column's expression, the column's collation.
    identity_always: bool = False
    generated: str | None = None
    collation: str | None = None

    def to_json(self) -> dict:
        entry: dict[str, Any] = {"object": self.kind, "table": self.table, "name": self.name,
                                 "present": self.present}
        if self.present and self.type_name is not None:
            entry.update(not_null=self.not_null, type=self.type_name, default=self.default, identity=self.identity)
            if self.identity_always:
                entry["identity_always"] = True
            if self.generated is not None:
                entry["generated"] = self.generated
            if self.collation is not None:
                entry["collation"] = self.collation
        return entry

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        if self.table in rollback.created_tables:
            return ()     # its table is dropped whole
        return (Column(self.table, self.name, present=not self.present),)


@dataclass(frozen=True)
class Constraint(Expectation):
    """Constraint ``name`` on ``table``; ``constraint_kind`` is pg_constraint.contype (p, u, c, f).
    ``key`` is the constrained columns in order; a foreign key adds ``references``, ``ref_columns``
    and ``on_delete``; a CHECK its ``expression``; an optional foreign key ``requires_table`` (present
    exactly when that table exists). ``columns`` (sorted) tells which column drops supersede it."""

    kind: ClassVar[str] = "constraint"
    table: str
    name: str
    present: bool = True
    columns: tuple[str, ...] = ()
    constraint_kind: str | None = None
    requires_table: str | None = None
    key: tuple[str, ...] | None = None
    references: str | None = None
    ref_columns: tuple[str, ...] | None = None
    on_delete: str | None = None
    expression: str | None = None
    # issue 12 options, written to the JSON only when set (so other bundles keep their bytes): a foreign
    # key's ON UPDATE action, MATCH FULL, DEFERRABLE / INITIALLY DEFERRED; validated=False accepts a
    # constraint left NOT VALID on purpose; a unique constraint's NULLS NOT DISTINCT.
    on_update: str | None = None
    match: str | None = None
    deferrable: bool = False
    initially_deferred: bool = False
    validated: bool = True
    nulls_not_distinct: bool = False

    def to_json(self) -> dict:
        entry: dict[str, Any] = {"object": self.kind, "table": self.table, "name": self.name,
                                 "present": self.present, "columns": sorted(self.columns),
                                 "kind": self.constraint_kind}
        if self.requires_table:
            entry["requires_table"] = self.requires_table
        for field in ("key", "references", "ref_columns", "on_delete", "expression", "on_update", "match"):
            value = getattr(self, field)
            if value is not None:
                entry[field] = list(value) if isinstance(value, tuple) else value
        for flag in ("deferrable", "initially_deferred", "nulls_not_distinct"):
            if getattr(self, flag):
                entry[flag] = True
        if not self.validated:
            entry["validated"] = False
        return entry

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        if self.table in rollback.created_tables:
            return ()     # its table is dropped whole
        return (Presence(self.kind, self.name, self.table, not self.present),)


@dataclass(frozen=True)
class IndexDefinition:
    """What the index check rebuilds on a probe copy of the table and compares with
    ``pg_get_indexdef``: ``keys`` are column names or expressions."""

    unique: bool
    method: str
    keys: tuple[str, ...]
    include: tuple[str, ...] = ()
    where: str | None = None
    nulls_not_distinct: bool = False

    def to_json(self) -> dict:
        entry = {"unique": self.unique, "method": self.method, "keys": list(self.keys),
                 "include": list(self.include), "where": self.where}
        if self.nulls_not_distinct:     # in the JSON only when set (other bundles keep their bytes)
            entry["nulls_not_distinct"] = True
        return entry


@dataclass(frozen=True)
class Index(Expectation):
    """Index ``name`` (schema-qualified) on ``table``, valid, and defined as ``definition`` if given."""

    kind: ClassVar[str] = "index"
    name: str
    table: str
    present: bool = True
    columns: tuple[str, ...] = ()
    definition: IndexDefinition | None = None

    def to_json(self) -> dict:
        entry: dict[str, Any] = {"object": self.kind, "name": self.name, "table": self.table,
                                 "present": self.present, "columns": sorted(self.columns)}
        if self.definition is not None:
            entry["definition"] = self.definition.to_json()
        return entry

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        if self.table in rollback.created_tables:
            return ()     # its table is dropped whole
        return (Presence(self.kind, self.name, self.table, not self.present),)


@dataclass(frozen=True)
class Backfill(Expectation):
    """A backfill of ``table`` finished: its progress table ``name`` holds the end cursor. ``backup``
    is the table holding each row's value before and after (``written`` maps a set column to its
    column there): a row whose value is back to the one before the backfill is reported."""

    kind: ClassVar[str] = "backfill"
    table: str
    name: str
    where: str | None
    set_columns: tuple[str, ...] = ()
    where_columns: tuple[str, ...] = ()
    backup: str | None = None
    written: tuple[tuple[str, str], ...] = ()
    key: tuple[str, ...] = ()

    present: ClassVar[bool] = True

    def to_json(self) -> dict:
        entry: dict[str, Any] = {"object": self.kind, "table": self.table, "name": self.name, "where": self.where,
                                 "set": sorted(self.set_columns), "where_columns": sorted(self.where_columns),
                                 "present": True}
        if self.backup:
            entry.update(backup=self.backup, key=list(self.key), written=dict(self.written))
        return entry

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        return (Table(self.name, present=False),)     # the progress table goes with the rollback


@dataclass(frozen=True)
class SeedRows(Expectation):
    """Seed rows of ``table``, keyed by ``key_columns``; ``name`` is the seed log (the keys this
    version inserted). Small seeds list every row (``rows``: column → JSON value): each key must be
    there, and a row this version inserted must still hold the seeded values. COPY seeds
    (``copy_file`` / ``copy_data``) are read back from the bundle's forward file instead."""

    kind: ClassVar[str] = "rows"
    table: str
    name: str
    key_columns: tuple[str, ...]
    rows: tuple[dict, ...] = ()
    count: int | None = None
    copy_file: str | None = None
    copy_data: tuple[dict, ...] = ()

    present: ClassVar[bool] = True

    def to_json(self) -> dict:
        entry: dict[str, Any] = {"object": self.kind, "table": self.table, "name": self.name,
                                 "key_columns": list(self.key_columns)}
        if self.copy_file is not None:
            entry.update(count=self.count, file=self.copy_file, data=[dict(d) for d in self.copy_data])
        else:
            entry["keys"] = [{c: json_value(row[c]) for c in self.key_columns} for row in self.rows]
            entry["values"] = [{c: json_value(v) for c, v in row.items()} for row in self.rows]
        entry["present"] = True
        return entry

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        if self.table in rollback.created_tables:
            return ()     # a table the version created is dropped whole, its rows copied out by the drop
        prefix = rollback.seed_backup_prefix(self.table)
        return (RemovedSeedRows(self, rollback.backup_schema, prefix),
                Backup(prefix, rollback.backup_schema, f"the seed rows of {self.table} removed by the rollback"))


@dataclass(frozen=True)
class SqlCheck(Expectation):
    """A RawSQL ``verify`` query: it must run and not return false. ``relations`` lists the
    schema-qualified tables it reads (computed by the operation), so a check is known to be
    superseded once a later applied version drops one of them."""

    kind: ClassVar[str] = "sql"
    name: str
    sql: str
    relations: tuple[str, ...] = ()
    search_path: str | None = None

    present: ClassVar[bool] = True

    def to_json(self) -> dict:
        entry: dict[str, Any] = {"object": self.kind, "name": self.name, "sql": self.sql, "present": True,
                                 "relations": sorted(self.relations)}
        if self.search_path:
            entry["search_path"] = self.search_path
        return entry


@dataclass(frozen=True)
class Backup(Expectation):
    """After a rollback: a backup table ``schema.name*`` holds ``what`` (data the rollback removed)."""

    kind: ClassVar[str] = "backup"
    name: str
    schema: str
    what: str

    present: ClassVar[bool] = True

    def to_json(self) -> dict:
        return {"object": self.kind, "name": self.name, "present": True, "schema": self.schema, "what": self.what}


@dataclass(frozen=True)
class Presence(Expectation):
    """After a rollback: constraint or index ``name`` on ``table`` is back (``present``) or gone — the
    check of its kind (``object``) with nothing but presence to compare."""

    object: str
    name: str
    table: str
    present: bool

    def to_json(self) -> dict:
        return {"object": self.object, "name": self.name, "table": self.table, "present": self.present}


@dataclass(frozen=True)
class RemovedSeedRows(Expectation):
    """After a rollback: the seed rows ``seeded`` inserted are gone from its table and left in the
    backup ``schema.prefix*`` the rollback copies them to."""

    seeded: SeedRows
    schema: str
    prefix: str

    kind: ClassVar[str] = "rows"

    def to_json(self) -> dict:
        return dict(self.seeded.to_json(), present=False, left_in={"schema": self.schema, "prefix": self.prefix})


KINDS: dict[str, type[Expectation]] = {
    cls.kind: cls for cls in (Schema, Extension, Table, Column, Constraint, Index, Backfill, SeedRows, SqlCheck,
                              Backup)
}
"""Every expectation kind, by its JSON ``"object"`` value; ``catalog_checks.CHECKS`` has one check each."""


@dataclass(frozen=True)
class ColumnNotNull(Expectation):
    """Column ``table.name`` of a table that may predate the specs is NOT NULL and holds no NULL
    (``not_null`` True: a validated NOT NULL, not PostgreSQL 18's ``NOT NULL … NOT VALID``) or has no
    NOT NULL at all (False) — what SetNotNull / DropNotNull leave. ``before`` is the column's state
    before the operation when the specs know it (their rollback restores it), None when they do not:
    the rollback is then not checked (it restores what the catalog said at forward time)."""

    kind: ClassVar[str] = "column_not_null"
    table: str
    name: str
    not_null: bool
    before: bool | None = None

    present: ClassVar[bool] = True

    def to_json(self) -> dict:
        return {"object": self.kind, "table": self.table, "name": self.name, "not_null": self.not_null,
                "columns": [self.name], "present": True}

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        if self.table in rollback.created_tables or self.before is None:
            return ()
        return (ColumnNotNull(self.table, self.name, self.before),)


_UNKNOWN = "<unknown>"


@dataclass(frozen=True)
class ColumnDefault(Expectation):
    """Column ``table.name`` has ``default`` (its DEFAULT-safe text, compared as PostgreSQL spells it
    for the column's own type) or no default (None) — what SetDefault / DropDefault leave. ``before``
    is the default before the operation when the specs know it (their rollback restores it; None:
    no default), ``_UNKNOWN`` when they do not."""

    kind: ClassVar[str] = "column_default"
    table: str
    name: str
    default: str | None
    before: str | None = _UNKNOWN

    present: ClassVar[bool] = True

    def to_json(self) -> dict:
        return {"object": self.kind, "table": self.table, "name": self.name, "default": self.default,
                "columns": [self.name], "present": True}

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        if self.table in rollback.created_tables or self.before == _UNKNOWN:
            return ()
        return (ColumnDefault(self.table, self.name, self.before),)


KINDS.update({cls.kind: cls for cls in (ColumnNotNull, ColumnDefault)})   # SetNotNull/DropNotNull, Set/DropDefault


@dataclass(frozen=True)
class Function(Expectation):
    """Function ``name`` (its signature, ``schema.name(type, …)``; ``lookup`` is the quoted form
    ``to_regprocedure`` reads) exists with ``body`` byte for byte (``prosrc``), ``language``, return type
    ``returns`` (compared as ``regtype``; ``setof``: returns a set), ``volatility`` (``provolatile``:
    i, s or v) and ``security_definer`` — or is absent (``present`` False). After a rollback, a function
    that existed before the version (not recorded as created by it) may stay."""

    kind: ClassVar[str] = "function"
    name: str
    lookup: str
    body: str | None = None
    language: str | None = None
    returns: str | None = None
    setof: bool = False
    volatility: str | None = None
    security_definer: bool = False
    present: bool = True
    version: str | None = None
    history_schema: str | None = None
    # ReplaceFunction: the rollback restores the definition saved at forward time, unknown to the bundle
    replaced: bool = False

    def to_json(self) -> dict:
        entry: dict[str, Any] = {"object": self.kind, "name": self.name, "lookup": self.lookup,
                                 "present": self.present}
        if self.present:
            entry.update(body=self.body, language=self.language, returns=self.returns, setof=self.setof,
                         volatility=self.volatility, security_definer=self.security_definer)
        if self.version is not None:
            entry.update(version=self.version, history_schema=self.history_schema)
        return entry

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        if not self.present or self.replaced:
            return ()
        return (Function(self.name, self.lookup, present=False, version=rollback.version,
                         history_schema=rollback.history_schema),)


@dataclass(frozen=True)
class Trigger(Expectation):
    """Trigger ``name`` on ``table`` exists, enabled, calling ``function`` (quoted ``schema.name``, no
    arguments) with ``tgtype`` (PostgreSQL's bit set: ROW 1, BEFORE 2, INSERT 4, DELETE 8, UPDATE 16,
    TRUNCATE 32, INSTEAD 64 — src/include/catalog/pg_trigger.h) and a WHEN condition or not (``when``)
    — or is absent. After a rollback, a trigger that existed before the version may stay."""

    kind: ClassVar[str] = "trigger"
    name: str
    table: str
    function: str | None = None
    tgtype: int | None = None
    when: bool = False
    present: bool = True
    version: str | None = None
    history_schema: str | None = None

    def to_json(self) -> dict:
        entry: dict[str, Any] = {"object": self.kind, "name": self.name, "table": self.table,
                                 "present": self.present}
        if self.present:
            entry.update(function=self.function, tgtype=self.tgtype, when=self.when)
        if self.version is not None:
            entry.update(version=self.version, history_schema=self.history_schema)
        return entry

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        if not self.present or self.table in rollback.created_tables:
            return ()
        return (Trigger(self.name, self.table, present=False, version=rollback.version,
                        history_schema=rollback.history_schema),)


KINDS.update({cls.kind: cls for cls in (Function, Trigger)})   # CreateFunction, CreateTrigger (issue 13)


@dataclass(frozen=True)
class PartitionKey(Expectation):
    """Table ``name`` is partitioned by ``key`` as ``pg_get_partkeydef`` prints it (``RANGE (created_at)``)
    — what ``CreateTable(partition_by=…)`` makes. Its rollback drops the table (a ``table`` expectation
    checks that)."""

    kind: ClassVar[str] = "partition_key"
    name: str
    key: str

    present: ClassVar[bool] = True

    def to_json(self) -> dict:
        return {"object": self.kind, "name": self.name, "key": self.key, "present": True}

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        return ()


@dataclass(frozen=True)
class PartitionOf(Expectation):
    """Table ``name`` is a partition of ``parent`` (``pg_inherits`` and ``relispartition``); with
    ``default`` the parent's DEFAULT partition — what ``CreatePartition`` makes. Its rollback drops the
    partition (a ``table`` expectation checks that)."""

    kind: ClassVar[str] = "partition_of"
    name: str
    parent: str
    default: bool = False

    present: ClassVar[bool] = True

    def to_json(self) -> dict:
        return {"object": self.kind, "name": self.name, "parent": self.parent, "default": self.default,
                "present": True}

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        return ()


KINDS.update({cls.kind: cls for cls in (PartitionKey, PartitionOf)})   # CreateTable(partition_by), CreatePartition



@dataclass(frozen=True)
class Comment(Expectation):
    """The object ``object_kind`` ``name`` has the comment ``comment`` (byte for byte) or none (None) —
    what CommentOn leaves. ``lookup`` is the name as PostgreSQL's lookup functions take it (quoted:
    ``"s"."t"``; a function's ``"s"."f"(integer)``); a column, constraint or trigger also gives its
    ``table`` and ``member`` name. ``before`` is the comment before the operation when the specs know
    it, ``_UNKNOWN`` when they do not (the specs do not track comments: the rollback restores what the
    catalog said at forward time, so the rolled-back state is not checked)."""

    kind: ClassVar[str] = "comment"
    object_kind: str
    name: str
    comment: str | None
    lookup: str
    table: str | None = None
    member: str | None = None
    before: str | None = _UNKNOWN

    present: ClassVar[bool] = True

    def to_json(self) -> dict:
        entry: dict[str, Any] = {"object": self.kind, "object_kind": self.object_kind, "name": self.name,
                                 "lookup": self.lookup, "comment": self.comment, "present": True}
        if self.table is not None:
            entry["table"] = self.table
        if self.member is not None:
            entry["member"] = self.member
        if self.object_kind == "COLUMN":
            entry["columns"] = [self.member]
        return entry

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        if self.before == _UNKNOWN or (self.table is not None and self.table in rollback.created_tables):
            return ()
        return (replace(self, comment=self.before, before=_UNKNOWN),)


KINDS.update({cls.kind: cls for cls in (Comment,)})   # CommentOn (issue 13)



@dataclass(frozen=True)
class Sequence(Expectation):
    """Sequence ``name`` exists with the parameters given (None: not checked) and, with ``owned_by``
    (``schema.table.column``), owned by that column — what CreateSequence / AlterSequence leave. After
    the rollback of the version that created it (``present`` False, ``version``/``history_schema``
    set): gone, unless it existed before that version (not recorded as created by it)."""

    kind: ClassVar[str] = "sequence"
    name: str
    present: bool = True
    as_type: str | None = None
    start: int | None = None
    increment: int | None = None
    min_value: int | None = None
    max_value: int | None = None
    cache: int | None = None
    cycle: bool | None = None
    owned_by: str | None = None
    version: str | None = None
    history_schema: str | None = None
    # AlterSequence: the sequence existed before (the rollback restores its parameters, not checked here)
    altered: bool = False

    _FIELDS: ClassVar[tuple[str, ...]] = ("as_type", "start", "increment", "min_value", "max_value", "cache",
                                          "cycle", "owned_by")

    def to_json(self) -> dict:
        entry: dict[str, Any] = {"object": self.kind, "name": self.name, "present": self.present}
        if self.present:
            entry["parameters"] = {f: getattr(self, f) for f in self._FIELDS if getattr(self, f) is not None}
        if self.version is not None:
            entry.update(version=self.version, history_schema=self.history_schema)
        return entry

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        if not self.present or self.altered:
            return ()
        return (Sequence(self.name, False, version=rollback.version, history_schema=rollback.history_schema),)


@dataclass(frozen=True)
class SequenceValue(Expectation):
    """Sequence ``name`` was set to ``value`` (``is_called``) by SetSequenceValue: its position is at or
    past that value (nextval may have run since: in the sequence's direction, ``increment`` > 0 ascending)."""

    kind: ClassVar[str] = "sequence_value"
    name: str
    value: int
    is_called: bool = True

    present: ClassVar[bool] = True

    def to_json(self) -> dict:
        return {"object": self.kind, "name": self.name, "value": self.value, "is_called": self.is_called,
                "present": True}

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        return ()     # the position before the version is what the catalog said at forward time (not known here)


KINDS.update({cls.kind: cls for cls in (Sequence, SequenceValue)})   # CreateSequence, AlterSequence, SetSequenceValue



@dataclass(frozen=True)
class EnumType(Expectation):
    """Enum type ``name`` (``schema.type``) exists with exactly ``labels`` in this order (None: any labels,
    but every one of ``includes``), or does not exist (``present`` False) — what CreateEnum, AddEnumValue,
    RenameEnumValue and DropEnum leave. ``before`` is what the version's rollback leaves: the labels before
    (None: the type was absent), or ``_UNKNOWN`` when the specs do not know them (not checked).
    ``version``/``history_schema``: after a rollback, a type this version did not create may stay."""

    kind: ClassVar[str] = "enum_type"
    name: str
    labels: tuple[str, ...] | None = None
    present: bool = True
    includes: tuple[str, ...] = ()
    before: tuple[str, ...] | None | str = _UNKNOWN
    version: str | None = None
    history_schema: str | None = None

    def to_json(self) -> dict:
        entry: dict[str, Any] = {"object": self.kind, "name": self.name, "present": self.present}
        if self.present:
            entry["labels"] = list(self.labels) if self.labels is not None else None
            if self.includes:
                entry["includes"] = list(self.includes)
        if self.version is not None:
            entry.update(version=self.version, history_schema=self.history_schema)
        return entry

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        if self.before == _UNKNOWN:
            return ()
        if self.before is None:
            return (EnumType(self.name, present=False, version=rollback.version,
                             history_schema=rollback.history_schema),)
        return (EnumType(self.name, labels=tuple(self.before)),)


KINDS[EnumType.kind] = EnumType   # CreateEnum, AddEnumValue, RenameEnumValue, DropEnum



@dataclass(frozen=True)
class DomainType(Expectation):
    """Domain ``name`` (``schema.domain``) over ``type_name`` with ``not_null``, ``default`` (SQL or None) and
    ``checks`` (SQL over VALUE), compared with a probe domain built from them (PostgreSQL's spellings on
    both sides) — what CreateDomain leaves; or absent (``present`` False: after its rollback, unless it
    existed before that version: ``version``/``history_schema``)."""

    kind: ClassVar[str] = "domain_type"
    name: str
    type_name: str | None = None
    not_null: bool = False
    default: str | None = None
    checks: tuple[str, ...] = ()
    present: bool = True
    version: str | None = None
    history_schema: str | None = None

    def to_json(self) -> dict:
        entry: dict[str, Any] = {"object": self.kind, "name": self.name, "present": self.present}
        if self.present:
            entry.update(type=self.type_name, not_null=self.not_null, default=self.default, checks=list(self.checks))
        if self.version is not None:
            entry.update(version=self.version, history_schema=self.history_schema)
        return entry

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        if not self.present:
            return ()
        return (DomainType(self.name, present=False, version=rollback.version, history_schema=rollback.history_schema),)


KINDS[DomainType.kind] = DomainType   # CreateDomain



@dataclass(frozen=True)
class CompositeType(Expectation):
    """Composite type ``name`` with ``attributes`` (name, type, collation or None) in order, compared with a
    probe type built from them (PostgreSQL's spellings on both sides) — what CreateCompositeType leaves; or
    absent (``present`` False: after its rollback, unless it existed before that version)."""

    kind: ClassVar[str] = "composite_type"
    name: str
    attributes: tuple[tuple[str, str, str | None], ...] = ()
    present: bool = True
    version: str | None = None
    history_schema: str | None = None

    def to_json(self) -> dict:
        entry: dict[str, Any] = {"object": self.kind, "name": self.name, "present": self.present}
        if self.present:
            entry["attributes"] = [{"name": n, "type": t, "collation": c} for n, t, c in self.attributes]
        if self.version is not None:
            entry.update(version=self.version, history_schema=self.history_schema)
        return entry

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        if not self.present:
            return ()
        return (CompositeType(self.name, present=False, version=rollback.version,
                              history_schema=rollback.history_schema),)


KINDS[CompositeType.kind] = CompositeType   # CreateCompositeType


def to_json(expectations: list[Expectation]) -> list[dict]:
    """The manifest's ``"expects"`` list. Raises TypeError for anything that is not an Expectation."""
    out = []
    for e in expectations:
        if not isinstance(e, Expectation) or type(e).kind not in KINDS:
            raise TypeError(f"an operation's expects() returned {e!r}, not one of the expectation kinds "
                            f"({', '.join(KINDS)})")
        out.append(e.to_json())
    return out


def json_value(value):
    """A seed value as JSON: dates, times, decimals and UUIDs as their text form (PostgreSQL casts
    it), a non-finite float as PostgreSQL spells it, jsonb dicts and lists as they are."""
    if isinstance(value, datetime.date | datetime.time | decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict | list):
        return json.loads(json.dumps(value, default=str))
    return value



@dataclass(frozen=True)
class View(Expectation):
    """View ``name`` (``materialized``: a materialized view) exists defined by ``query`` (compared as
    PostgreSQL prints it: ``pg_get_viewdef`` of the view against that of a temporary view made from
    ``query`` and rolled back), or exists at all (``query`` None), or is absent (``present`` False).
    ``before`` is the query before the operation when the specs know it (None: no view; its rollback
    restores that), ``_UNKNOWN`` when they do not (the rollback restores what the catalog had)."""

    kind: ClassVar[str] = "view"
    name: str
    query: str | None = None
    present: bool = True
    materialized: bool = False
    before: str | None = _UNKNOWN
    # after a rollback (as Schema): the version whose rollback removes it and dbdeploy's history schema,
    # so a view that existed before that version (accepted, not recorded as created by it) may rightly stay
    version: str | None = None
    history_schema: str | None = None

    def to_json(self) -> dict:
        entry: dict[str, Any] = {"object": self.kind, "name": self.name, "present": self.present}
        if self.present:
            entry.update(query=self.query, materialized=self.materialized)
        if self.version is not None:
            entry.update(version=self.version, history_schema=self.history_schema, materialized=self.materialized)
        return entry

    def after_rollback(self, rollback: Rollback) -> tuple[Expectation, ...]:
        if self.before == _UNKNOWN:
            return ()
        if self.before is None:
            return (View(self.name, present=False, materialized=self.materialized, version=rollback.version,
                         history_schema=rollback.history_schema),)
        return (View(self.name, self.before, materialized=self.materialized),)


KINDS.update({cls.kind: cls for cls in (View,)})   # CreateView/ReplaceView/DropView (issue 13)
