"""DROP TABLE / DROP COLUMN / DROP CONSTRAINT in a RawSQL forward whose rollback does not bring it back."""

from __future__ import annotations

from pglast import ast
from pglast.enums import AlterTableType, ObjectType

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.lint.rules._sql import alter_table_commands
from dbdeploy.lint.sqlwalk import qualified_names, table_name

ID = "irreversible-drop"
SEVERITY = "error"
PROBLEM = ("The forward SQL drops a table, column or constraint, and the RawSQL rollback does not recreate it: "
           "rolling back leaves it missing (a table's or column's data is gone; rows written meanwhile may break a "
           "constraint nobody saved).")
FIX = ("Use DropTable / DropColumn / DropConstraint (the table is set aside, the column's values are copied, the "
       "constraint's definition is saved, and the rollback restores them — a constraint NOT VALID then VALIDATE, a "
       "unique key concurrently), or make the rollback recreate what the forward drops.")


def _restored_tables(ctx: OpContext) -> set[str]:
    restored: set[str] = set()
    for stmt in ctx.rollback:
        if stmt.in_function:
            continue
        node = stmt.node
        if isinstance(node, ast.CreateStmt):
            restored.add(table_name(node.relation))
        elif isinstance(node, ast.CreateTableAsStmt) and node.into is not None:
            restored.add(table_name(node.into.rel))
        elif isinstance(node, ast.SelectStmt) and node.intoClause is not None:
            restored.add(table_name(node.intoClause.rel))
        elif isinstance(node, ast.RenameStmt) and node.renameType == ObjectType.OBJECT_TABLE and node.relation:
            restored.add(f"{node.relation.schemaname or 'public'}.{node.newname}")
        elif (isinstance(node, ast.AlterObjectSchemaStmt) and node.objectType == ObjectType.OBJECT_TABLE
              and node.relation is not None):
            restored.add(f"{node.newschema}.{node.relation.relname}")
    return restored


def _restored_columns(ctx: OpContext) -> set[tuple[str, str]]:
    restored: set[tuple[str, str]] = set()
    for stmt, _node, table, cmd in alter_table_commands(ctx.rollback):
        if not stmt.in_function and cmd.subtype == AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
            restored.add((table, cmd.def_.colname))
    for stmt in ctx.rollback:
        node = stmt.node
        if (isinstance(node, ast.RenameStmt) and node.renameType == ObjectType.OBJECT_COLUMN
                and node.relation is not None and not stmt.in_function):
            restored.add((table_name(node.relation), node.newname))
    return restored


def _restored_constraints(ctx: OpContext) -> set[tuple[str, str]]:
    return {(table, cmd.def_.conname) for stmt, _node, table, cmd in alter_table_commands(ctx.rollback)
            if not stmt.in_function and cmd.subtype == AlterTableType.AT_AddConstraint
            and isinstance(cmd.def_, ast.Constraint) and cmd.def_.conname}


def check(ctx: OpContext):
    if not ctx.forward:
        return
    tables, columns = _restored_tables(ctx), _restored_columns(ctx)
    for stmt in ctx.forward:
        node = stmt.node
        if isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_TABLE:
            for name in qualified_names(node.objects):
                if not ctx.is_new(name, stmt) and name not in tables:
                    yield f"{stmt.label()} (drops table {name}; the rollback does not recreate it)"
    for stmt, node, table, cmd in alter_table_commands(ctx.forward):
        if (cmd.subtype == AlterTableType.AT_DropColumn and cmd.name and not ctx.relation_is_new(node.relation, stmt)
                and (table, cmd.name) not in columns):
            yield f"{stmt.label()} (drops column {table}.{cmd.name}; the rollback does not add it back)"
    constraints = _restored_constraints(ctx)
    for stmt, node, table, cmd in alter_table_commands(ctx.forward):
        if (cmd.subtype == AlterTableType.AT_DropConstraint and cmd.name
                and not ctx.relation_is_new(node.relation, stmt) and (table, cmd.name) not in constraints):
            yield f"{stmt.label()} (drops constraint {cmd.name} of {table}; the rollback does not add it back)"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
