"""What a rule sees about one operation: the operation, where it is, and the schema around it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from pglast import ast
from pglast.enums import AlterTableType, ConstrType

from dbdeploy.lint import types
from dbdeploy.lint.sqlwalk import SqlStatement, is_temporary, table_name
from dbdeploy.lint.state import LintState
from dbdeploy.ops import AddColumn, CreateTable, Operation
from dbdeploy.ops.migration import Migration


@dataclass(frozen=True)
class ColumnUse:
    """A column an operation declares (in a spec model or in RawSQL), for the type rules."""

    table: str
    name: str
    type: types.TypeInfo
    primary_key: bool
    identity: bool
    foreign_key: bool
    where: str = ""            # "" for spec models; "forward, statement 2: " for RawSQL

    @property
    def is_key(self) -> bool:
        """An id: part of the primary key, an identity, a foreign key, or named ``id`` / ``*_id``."""
        return (self.primary_key or self.identity or self.foreign_key or self.name == "id"
                or self.name.endswith("_id"))

    @property
    def role(self) -> str:
        roles = [r for r, on in (("primary key", self.primary_key), ("identity", self.identity),
                                 ("foreign key", self.foreign_key)) if on]
        return f" ({', '.join(roles)})" if roles else ""

    def label(self) -> str:
        return f"{self.where}column {self.table}.{self.name} is {self.type}{self.role}"


@dataclass(frozen=True)
class OpContext:
    file: str
    migration: Migration
    index: int                              # 0-based position in the migration
    op: Operation
    before: LintState                       # schema before this operation
    after: LintState                        # … after it
    end: LintState                          # … after the whole migration
    new_tables: frozenset[str]              # tables created by earlier operations of this migration
    forward: tuple[SqlStatement, ...] = ()  # RawSQL only
    rollback: tuple[SqlStatement, ...] = ()

    @property
    def version(self) -> str:
        return self.migration.version

    @property
    def statements(self) -> tuple[SqlStatement, ...]:
        return self.forward + self.rollback

    def is_new(self, table: str, stmt: SqlStatement | None = None) -> bool:
        """True for a table that holds no rows yet when this runs: created earlier in the same RawSQL
        body or, for a forward body and spec operations, by an earlier operation of this migration."""
        if stmt is not None:
            if table in stmt.created_tables:
                return True
            if stmt.body != "forward":
                return False
        return table in self.new_tables

    def relation_is_new(self, range_var, stmt: SqlStatement) -> bool:
        return is_temporary(range_var) or self.is_new(table_name(range_var), stmt)

    @cached_property
    def columns(self) -> list[ColumnUse]:
        op = self.op
        if isinstance(op, CreateTable):
            fk_columns = {c for fk in op.foreign_keys for c in fk.columns}
            return [ColumnUse(op.table, c.name, info, c.name in op.primary_key, c.identity, c.name in fk_columns)
                    for c in op.columns if (info := types.from_text(c.type)) is not None]
        if isinstance(op, AddColumn):
            info = types.from_text(op.column.type)
            return [ColumnUse(op.table, op.column.name, info, False, False, False)] if info else []
        found: list[ColumnUse] = []
        for stmt in self.forward:
            if stmt.in_function:
                continue
            node = stmt.node
            if isinstance(node, ast.CreateStmt) and not is_temporary(node.relation):
                found += _create_columns(node, f"{stmt.body}, {stmt.where}: ")
            elif isinstance(node, ast.AlterTableStmt) and node.relation is not None:
                for cmd in node.cmds or ():
                    if cmd.subtype == AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
                        found += _column_uses(table_name(node.relation), [cmd.def_], set(), set(),
                                              f"{stmt.body}, {stmt.where}: ")
        return found


def _create_columns(node, where: str) -> list[ColumnUse]:
    defs = [e for e in node.tableElts or () if isinstance(e, ast.ColumnDef)]
    pk: set[str] = set()
    fk: set[str] = set()
    for element in node.tableElts or ():
        if isinstance(element, ast.Constraint):
            if element.contype == ConstrType.CONSTR_PRIMARY:
                pk |= {k.sval for k in element.keys or ()}
            elif element.contype == ConstrType.CONSTR_FOREIGN:
                fk |= {k.sval for k in element.fk_attrs or ()}
    return _column_uses(table_name(node.relation), defs, pk, fk, where)


def _column_uses(table: str, defs, pk: set[str], fk: set[str], where: str) -> list[ColumnUse]:
    uses = []
    for column in defs:
        if column.typeName is None:
            continue
        kinds = {c.contype for c in column.constraints or () if isinstance(c, ast.Constraint)}
        uses.append(ColumnUse(
            table, column.colname, types.from_type_name(column.typeName),
            column.colname in pk or ConstrType.CONSTR_PRIMARY in kinds,
            ConstrType.CONSTR_IDENTITY in kinds,
            column.colname in fk or ConstrType.CONSTR_FOREIGN in kinds, where))
    return uses
