"""What lint knows about the schema at each operation: dbdeploy's own SchemaState (advanced by
each operation's ``apply``, exactly as planning does) plus what the rules need beyond it —
unique constraints, foreign keys, validated ``CHECK (c IS NOT NULL)`` constraints and the
indexes RawSQL creates."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from pglast import ast, parse_sql
from pglast.enums import AlterTableType, ConstrType, NullTestType, ObjectType
from pglast.parser import ParseError

from dbdeploy.lint.sqlwalk import SqlStatement, qualified_names, table_name
from dbdeploy.model.components import Check, Index
from dbdeploy.ops import (
    AddCheck,
    AddForeignKey,
    AddUnique,
    CreateIndex,
    CreateTable,
    DropColumn,
    DropTable,
    Operation,
    RawSQL,
    SchemaState,
)


@dataclass(frozen=True)
class ForeignKeyInfo:
    table: str
    name: str
    columns: tuple[str, ...]
    references: str
    version: str
    index: int              # operation index (0-based) that added it


@dataclass(frozen=True)
class AccessPath:
    """Something that finds rows by its leading columns: an index, the primary key, a unique constraint."""

    what: str
    columns: tuple[str | None, ...]   # None for an expression key
    single_column_only: bool = False  # hash indexes serve only a lookup on their one column

    def covers(self, columns: tuple[str, ...]) -> bool:
        n = len(columns)
        if self.single_column_only and n != 1:
            return False
        return len(self.columns) >= n and set(self.columns[:n]) == set(columns)


@dataclass
class LintState:
    schema: SchemaState = field(default_factory=lambda: SchemaState(complete=True))
    uniques: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    foreign_keys: dict[tuple[str, str], ForeignKeyInfo] = field(default_factory=dict)
    not_null_checks: dict[str, dict[str, str]] = field(default_factory=dict)    # table → check name → column
    pending_checks: dict[str, dict[str, str]] = field(default_factory=dict)     # NOT VALID, not validated yet
    raw_indexes: dict[str, tuple[str, AccessPath]] = field(default_factory=dict)  # index → (table, path)
    raw_dropped: set[str] = field(default_factory=set)      # spec-created indexes that RawSQL dropped

    def copy(self) -> LintState:
        """A snapshot later operations cannot change. Shallow: the inner per-table mappings are
        replaced, never changed in place (see _put/_drop), and SchemaState is copy-on-write too,
        so a snapshot per operation costs the top-level mappings only."""
        return LintState(self.schema.copy(), dict(self.uniques), dict(self.foreign_keys),
                         dict(self.not_null_checks), dict(self.pending_checks), dict(self.raw_indexes),
                         set(self.raw_dropped))

    # -- what the rules ask ------------------------------------------------------------------

    def access_paths(self, table: str) -> list[AccessPath]:
        paths: list[AccessPath] = []
        known = self.schema.tables.get(table)
        if known is not None and known.primary_key:
            paths.append(AccessPath("the primary key", tuple(known.primary_key)))
        for name, columns in sorted(self.uniques.get(table, {}).items()):
            paths.append(AccessPath(f"unique constraint {name}", columns))
        for name, (owner, index) in sorted(self.schema.indexes.items()):
            if owner == table and name not in self.raw_dropped:
                path = index_path(name, index)
                if path is not None:
                    paths.append(path)
        paths += [path for owner, path in (self.raw_indexes[n] for n in sorted(self.raw_indexes)) if owner == table]
        return paths

    def covering(self, fk: ForeignKeyInfo) -> AccessPath | None:
        return next((p for p in self.access_paths(fk.table) if p.covers(fk.columns)), None)

    def index_table(self, name: str) -> str | None:
        """The table of an index the specs (or their RawSQL) created, by qualified name."""
        if name in self.schema.indexes and name not in self.raw_dropped:
            return self.schema.indexes[name][0]
        return self.raw_indexes[name][0] if name in self.raw_indexes else None

    def has_not_null_check(self, table: str, column: str) -> bool:
        return column in self.not_null_checks.get(table, {}).values()

    def primary_key(self, table: str) -> list[str] | None:
        known = self.schema.tables.get(table)
        return list(known.primary_key) if known is not None and known.primary_key else None

    # -- advancing past an operation (after ``op.apply(state.schema)``) ---------------------

    def advance(self, op: Operation, version: str, index: int, forward: list[SqlStatement]) -> None:
        if isinstance(op, CreateTable):
            self.raw_dropped -= {i.qualified_name(op.table) for i in op.indexes}
            self.uniques[op.table] = {u.resolved_name(op.table): tuple(u.columns) for u in op.uniques}
            for fk in op.foreign_keys:
                self._add_fk(op.table, fk, version, index)
            for check in op.checks:
                self._add_check(op.table, check)
        elif isinstance(op, AddUnique):
            _put(self.uniques, op.table, op.unique.resolved_name(op.table), tuple(op.unique.columns))
        elif isinstance(op, AddForeignKey):
            self._add_fk(op.table, op.foreign_key, version, index)
        elif isinstance(op, AddCheck):
            self._add_check(op.table, op.check)
        elif isinstance(op, DropColumn):
            self._forget_column(op.table, op.column)
        elif isinstance(op, DropTable):
            self._forget_table(op.table)
        elif isinstance(op, CreateIndex):
            self.raw_dropped.discard(op.index.qualified_name(op.table))
        elif isinstance(op, RawSQL):
            for stmt in forward:
                if not stmt.in_function:
                    self._raw(stmt.node)

    def _add_fk(self, table: str, fk, version: str, index: int) -> None:
        name = fk.resolved_name(table)
        self.foreign_keys[(table, name)] = ForeignKeyInfo(table, name, tuple(fk.columns), fk.references,
                                                          version, index)

    def _add_check(self, table: str, check: Check) -> None:
        column = not_null_column(_expression_node(check.expression))
        if column:
            _put(self.not_null_checks, table, check.resolved_name(table), column)

    def _forget_column(self, table: str, column: str) -> None:
        self.uniques[table] = {n: c for n, c in self.uniques.get(table, {}).items() if column not in c}
        self.foreign_keys = {k: v for k, v in self.foreign_keys.items()
                             if not (v.table == table and column in v.columns)}
        for checks in (self.not_null_checks, self.pending_checks):
            checks[table] = {n: c for n, c in checks.get(table, {}).items() if c != column}
        self.raw_indexes = {n: (t, p) for n, (t, p) in self.raw_indexes.items()
                            if not (t == table and column in p.columns)}

    def _forget_table(self, table: str) -> None:
        for mapping in (self.uniques, self.not_null_checks, self.pending_checks):
            mapping.pop(table, None)
        self.foreign_keys = {k: v for k, v in self.foreign_keys.items() if v.table != table}
        self.raw_indexes = {n: (t, p) for n, (t, p) in self.raw_indexes.items() if t != table}

    def _raw(self, node) -> None:
        if isinstance(node, ast.IndexStmt):
            path = raw_index_path(node)
            if path is not None:
                name = f"{node.relation.schemaname or 'public'}.{node.idxname or '?' + str(len(self.raw_indexes))}"
                self.raw_indexes[name] = (table_name(node.relation), path)
        elif isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_INDEX:
            for name in qualified_names(node.objects):
                self.raw_indexes.pop(name, None)
                if name in self.schema.indexes:
                    self.raw_dropped.add(name)
        elif isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_TABLE:
            for name in qualified_names(node.objects):
                self._forget_table(name)
        elif isinstance(node, ast.AlterTableStmt) and node.relation is not None:
            table = table_name(node.relation)
            for cmd in node.cmds or ():
                self._raw_alter(table, cmd)

    def _raw_alter(self, table: str, cmd) -> None:
        if cmd.subtype == AlterTableType.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
            con = cmd.def_
            if con.contype == ConstrType.CONSTR_CHECK and con.conname:
                column = not_null_column(con.raw_expr)
                if column:
                    target = self.pending_checks if con.skip_validation else self.not_null_checks
                    _put(target, table, con.conname, column)
            elif con.contype in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY) and con.keys:
                _put(self.uniques, table, con.conname or "?", tuple(k.sval for k in con.keys))
        elif cmd.subtype == AlterTableType.AT_ValidateConstraint and cmd.name:
            column = _drop(self.pending_checks, table, cmd.name)
            if column:
                _put(self.not_null_checks, table, cmd.name, column)
        elif cmd.subtype == AlterTableType.AT_DropConstraint and cmd.name:
            for mapping in (self.not_null_checks, self.pending_checks, self.uniques):
                _drop(mapping, table, cmd.name)
        elif cmd.subtype == AlterTableType.AT_DropColumn and cmd.name:
            self._forget_column(table, cmd.name)


def not_null_column(node) -> str | None:
    """``c`` when ``node`` is the expression ``c IS NOT NULL``."""
    if (isinstance(node, ast.NullTest) and node.nulltesttype == NullTestType.IS_NOT_NULL
            and isinstance(node.arg, ast.ColumnRef) and len(node.arg.fields) == 1
            and isinstance(node.arg.fields[0], ast.String)):
        return node.arg.fields[0].sval
    return None


def _expression_node(text: str):
    try:
        return parse_sql(f"SELECT {text}")[0].stmt.targetList[0].val
    except (ParseError, AttributeError, IndexError):
        return None


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
