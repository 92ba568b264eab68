"""What lint knows about the schema at each operation: the SchemaState of the one walk
(:func:`dbdeploy.ops.walk.walk`, advanced by each operation's ``apply``, exactly as planning sees it),
plus what only RawSQL tells — its statements, parsed: the indexes, unique constraints and validated
``CHECK (c IS NOT NULL)`` constraints it adds, and which of the specs' objects it drops."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from pglast import ast, parse_sql
from pglast.enums import AlterTableType, ConstrType, ObjectType
from pglast.parser import ParseError

from dbdeploy.lint.sqlwalk import SqlStatement, qualified_names, table_name
from dbdeploy.model.components import Index
from dbdeploy.ops import Operation, SchemaState
from dbdeploy.ops.base import ForeignKeyFact
from dbdeploy.sql.parse import not_null_column


@dataclass(frozen=True)
class AccessPath:
    """Something that finds rows by its leading columns: an index, the primary key, a unique constraint."""

    what: str
    columns: tuple[str | None, ...]   # None for an expression key
    single_column_only: bool = False  # hash indexes serve only a lookup on their one column

    def covers(self, columns: tuple[str, ...]) -> bool:
        """Whether a lookup by ``columns`` (in any order) can use this path's leading keys."""
        n = len(columns)
        if self.single_column_only and n != 1:
            return False
        return len(self.columns) >= n and set(self.columns[:n]) == set(columns)


@dataclass
class RawFacts:
    """What RawSQL statements told lint, beyond what the operations' ``apply`` recorded.

    Inner per-table mappings are replaced, never changed in place (see :func:`_put`), so a snapshot copies
    the top-level mappings only. ``hidden`` holds the specs' objects a RawSQL statement dropped: key →
    the very entry of the SchemaState it dropped (compared by identity, so an object an operation adds
    again under the same name is a new entry, and visible).
    """

    uniques: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)   # table → name → columns
    not_null_checks: dict[str, dict[str, str]] = field(default_factory=dict)    # table → check name → column
    pending_checks: dict[str, dict[str, str]] = field(default_factory=dict)     # NOT VALID, not validated yet
    indexes: dict[str, tuple[str, AccessPath]] = field(default_factory=dict)    # index → (table, path)
    hidden: dict[tuple, object] = field(default_factory=dict)

    def copy(self) -> RawFacts:
        """A snapshot later statements cannot change (shallow: see the class doc)."""
        return RawFacts(dict(self.uniques), dict(self.not_null_checks), dict(self.pending_checks),
                        dict(self.indexes), dict(self.hidden))

    def forget(self, table: str, column: str = "") -> None:
        """Forget what RawSQL said about a dropped table (``column`` empty) or column."""
        if not column:
            for mapping in (self.uniques, self.not_null_checks, self.pending_checks):
                mapping.pop(table, None)
            self.indexes = {n: (t, p) for n, (t, p) in self.indexes.items() if t != table}
            return
        self.uniques[table] = {n: c for n, c in self.uniques.get(table, {}).items() if column not in c}
        for checks in (self.not_null_checks, self.pending_checks):
            checks[table] = {n: c for n, c in checks.get(table, {}).items() if c != column}
        self.indexes = {n: (t, p) for n, (t, p) in self.indexes.items() if not (t == table and column in p.columns)}


@dataclass
class LintState:
    """The walk's SchemaState and the RawSQL facts, with the questions the rules ask of both."""

    schema: SchemaState = field(default_factory=lambda: SchemaState(complete=True))
    raw: RawFacts = field(default_factory=RawFacts)

    def copy(self) -> LintState:
        """A snapshot later operations cannot change: SchemaState and RawFacts are copy-on-write, so a
        snapshot per operation costs the top-level mappings only."""
        return LintState(self.schema.copy(), self.raw.copy())

    # -- what the rules ask ------------------------------------------------------------------

    def _live(self, key: tuple, entry) -> bool:
        return self.raw.hidden.get(key) is not entry

    def uniques(self, table: str) -> dict[str, tuple[str, ...]]:
        """Unique constraints of ``table``: name → columns (the specs', less those RawSQL dropped, and RawSQL's)."""
        known = self.schema.tables.get(table)
        spec = {} if known is None else {n: c for n, c in known.uniques.items() if self._live(("unique", table, n), c)}
        return {**spec, **self.raw.uniques.get(table, {})}

    @property
    def foreign_keys(self) -> dict[tuple[str, str], ForeignKeyFact]:
        """The foreign keys the operations added, less those RawSQL dropped: (table, name) → fact."""
        fks = self.schema.foreign_keys
        if not self.raw.hidden:
            return fks
        return {k: v for k, v in fks.items() if self._live(("fk", k), v)}

    def access_paths(self, table: str) -> list[AccessPath]:
        """What finds rows of ``table`` by leading columns: primary key, unique constraints, usable indexes."""
        paths: list[AccessPath] = []
        known = self.schema.tables.get(table)
        if known is not None and known.primary_key:
            paths.append(AccessPath("the primary key", tuple(known.primary_key)))
        for name, columns in sorted(self.uniques(table).items()):
            paths.append(AccessPath(f"unique constraint {name}", columns))
        for name, entry in sorted(self.schema.indexes.items()):
            owner, index = entry
            if owner == table and self._live(("index", name), entry):
                path = index_path(name, index)
                if path is not None:
                    paths.append(path)
        paths += [path for owner, path in (self.raw.indexes[n] for n in sorted(self.raw.indexes)) if owner == table]
        return paths

    def covering(self, fk: ForeignKeyFact) -> AccessPath | None:
        """The first access path that serves lookups by ``fk``'s columns, or None."""
        return next((p for p in self.access_paths(fk.table) if p.covers(fk.columns)), None)

    def index_table(self, name: str) -> str | None:
        """The table of an index the specs (or their RawSQL) created, by qualified name."""
        entry = self.schema.indexes.get(name)
        if entry is not None and self._live(("index", name), entry):
            return entry[0]
        return self.raw.indexes[name][0] if name in self.raw.indexes else None

    def has_not_null_check(self, table: str, column: str) -> bool:
        """Whether a validated ``CHECK (column IS NOT NULL)`` of ``table`` is known (specs or RawSQL)."""
        if column in self.raw.not_null_checks.get(table, {}).values():
            return True
        return any(fact.not_null_column == column and self._live(("check", key), fact)
                   for key, fact in self.schema.checks.items() if fact.table == table)

    def primary_key(self, table: str) -> list[str] | None:
        """The primary key the specs gave ``table``, or None."""
        known = self.schema.tables.get(table)
        return list(known.primary_key) if known is not None and known.primary_key else None

    # -- advancing past an operation (after the walk applied it to ``schema``) -----------------

    def advance(self, before: LintState, op: Operation, forward: list[SqlStatement]) -> None:
        """Bring the RawSQL facts past ``op`` (``before``: the snapshot before it; ``forward``: its parsed
        forward SQL when it is RawSQL): what the operation dropped (SchemaState.dropped) takes RawSQL's facts
        about it along, a table the specs create now starts without RawSQL unique constraints, and RawSQL
        statements are read."""
        for table, column in self.schema.dropped[len(before.schema.dropped):]:
            self.raw.forget(table, column)
        target = op.target()
        if target in self.schema.tables and target not in before.schema.tables:
            self.raw.uniques.pop(target, None)
        for stmt in forward:
            if not stmt.in_function:
                self._raw(stmt.node)

    def _hide(self, key: tuple, entry) -> None:
        self.raw.hidden = {**self.raw.hidden, key: entry}

    def _raw_forget(self, table: str, column: str = "") -> None:
        """A RawSQL DROP TABLE / DROP COLUMN: hide what the specs said about it, forget RawSQL's facts."""
        known = self.schema.tables.get(table)
        if known is not None:
            for name, columns in known.uniques.items():
                if not column or column in columns:
                    self._hide(("unique", table, name), columns)
        for key, fk in self.schema.foreign_keys.items():
            if fk.table == table and (not column or column in fk.columns):
                self._hide(("fk", key), fk)
        for key, fact in self.schema.checks.items():
            if fact.table == table and fact.not_null_column and (not column or fact.not_null_column == column):
                self._hide(("check", key), fact)
        self.raw.forget(table, column)

    def _raw(self, node) -> None:
        raw = self.raw
        if isinstance(node, ast.IndexStmt):
            path = raw_index_path(node)
            if path is not None:
                name = f"{node.relation.schemaname or 'public'}.{node.idxname or '?' + str(len(raw.indexes))}"
                raw.indexes[name] = (table_name(node.relation), path)
        elif isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_INDEX:
            for name in qualified_names(node.objects):
                raw.indexes.pop(name, None)
                if name in self.schema.indexes:
                    self._hide(("index", name), self.schema.indexes[name])
        elif isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_TABLE:
            for name in qualified_names(node.objects):
                self._raw_forget(name)
        elif isinstance(node, ast.AlterTableStmt) and node.relation is not None:
            table = table_name(node.relation)
            for cmd in node.cmds or ():
                self._raw_alter(table, cmd)

    def _raw_alter(self, table: str, cmd) -> None:
        raw = self.raw
        if cmd.subtype == AlterTableType.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
            con = cmd.def_
            if con.contype == ConstrType.CONSTR_CHECK and con.conname:
                column = not_null_column(con.raw_expr)
                if column:
                    target = raw.pending_checks if con.skip_validation else raw.not_null_checks
                    _put(target, table, con.conname, column)
            elif con.contype in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY) and con.keys:
                _put(raw.uniques, table, con.conname or "?", tuple(k.sval for k in con.keys))
        elif cmd.subtype == AlterTableType.AT_ValidateConstraint and cmd.name:
            column = _drop(raw.pending_checks, table, cmd.name)
            if column:
                _put(raw.not_null_checks, table, cmd.name, column)
        elif cmd.subtype == AlterTableType.AT_DropConstraint and cmd.name:
            for mapping in (raw.not_null_checks, raw.pending_checks, raw.uniques):
                _drop(mapping, table, cmd.name)
            check = self.schema.checks.get((table, cmd.name))
            if check is not None and check.not_null_column:
                self._hide(("check", (table, cmd.name)), check)
            known = self.schema.tables.get(table)
            if known is not None and cmd.name in known.uniques:
                self._hide(("unique", table, cmd.name), known.uniques[cmd.name])
        elif cmd.subtype == AlterTableType.AT_DropColumn and cmd.name:
            self._raw_forget(table, cmd.name)


def index_keys(index: Index) -> tuple[str | None, ...]:
    """The plain column of each key of a spec index (None for an expression key)."""
    return tuple(_key_column(key) for key in index.columns)


@functools.lru_cache(maxsize=4096)
def _key_column(key: str) -> str | None:
    try:
        return parse_sql(f"CREATE INDEX lint_probe ON lint_probe ({key})")[0].stmt.indexParams[0].name
    except (ParseError, AttributeError, IndexError):
        return None


def index_path(name: str, index: Index) -> AccessPath | None:
    if index.where is not None or index.method not in ("btree", "hash"):
        return None
    return AccessPath(f"index {name}", index_keys(index), single_column_only=index.method == "hash")


def raw_index_path(node) -> AccessPath | None:
    method = (node.accessMethod or "btree").lower()
    if node.whereClause is not None or method not in ("btree", "hash"):
        return None
    name = f"{node.relation.schemaname or 'public'}.{node.idxname}" if node.idxname else "an unnamed index"
    keys = tuple(elem.name if isinstance(elem, ast.IndexElem) else None for elem in node.indexParams or ())
    return AccessPath(f"index {name}", keys, single_column_only=method == "hash")


def _put(mapping: dict[str, dict], table: str, key: str, value) -> None:
    """Set mapping[table][key] without changing the inner dict other snapshots may share."""
    mapping[table] = {**mapping.get(table, {}), key: value}


def _drop(mapping: dict[str, dict], table: str, key: str):
    inner = mapping.get(table)
    if not inner or key not in inner:
        return None
    mapping[table] = {k: v for k, v in inner.items() if k != key}
    return inner[key]
