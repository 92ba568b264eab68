"""A foreign key whose columns no index covers."""

from __future__ import annotations

from pglast import ast
from pglast.enums import ObjectType

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.lint.sqlwalk import qualified_names, table_name
from dbdeploy.ops import DropColumn, DropIndex

ID = "fk-without-index"
SEVERITY = "warning"
PROBLEM = ("No index on the referencing table starts with the foreign key's columns, so every DELETE or key UPDATE "
           "on the referenced table scans the referencing table (holding its locks meanwhile), and so do joins "
           "along the key. Checked for tables the specs created, whose indexes the specs know; the index may come "
           "later in the same migration.")
FIX = ("Add an index whose leading columns are the foreign key's columns (CreateIndex, or indexes=[…] in "
       "CreateTable); a primary key or unique constraint that starts with them covers it too.")


def _columns(columns) -> str:
    return ", ".join(columns)


def _touched_tables(ctx: OpContext) -> set[str]:
    """Tables whose indexes this operation may drop (directly or with a column)."""
    op = ctx.op
    if isinstance(op, DropIndex):
        return {t for t in (ctx.before.index_table(op.name),) if t}
    if isinstance(op, DropColumn):
        return {op.table}
    touched: set[str] = set()
    for stmt in ctx.forward:
        node = stmt.node
        if stmt.in_function:
            continue
        if isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_INDEX:
            touched |= {t for t in map(ctx.before.index_table, qualified_names(node.objects)) if t}
        elif isinstance(node, ast.AlterTableStmt) and node.relation is not None:
            touched.add(table_name(node.relation))
    return touched


def check(ctx: OpContext):
    # the foreign keys this operation's apply() recorded (CreateTable, AddForeignKey, …)
    added = [key for key, fk in ctx.after.foreign_keys.items() if fk.version == ctx.version and fk.index == ctx.index]
    for key in added:
        fk = ctx.end.foreign_keys.get(key)
        if fk is not None and fk.table in ctx.end.schema.tables and ctx.end.covering(fk) is None:
            yield (f"foreign key {fk.name} on {fk.table} ({_columns(fk.columns)}) → {fk.references}: no index on "
                   f"{fk.table} starts with ({_columns(fk.columns)})")
    touched = _touched_tables(ctx)
    for key, fk in ctx.before.foreign_keys.items():
        if fk.table not in touched or fk.version == ctx.version or fk.table not in ctx.before.schema.tables:
            continue        # a foreign key of this migration is checked where it is added
        had = ctx.before.covering(fk)
        later = ctx.end.foreign_keys.get(key)
        if had is not None and ctx.after.covering(fk) is None and later is not None and ctx.end.covering(later) is None:
            yield (f"foreign key {fk.name} on {fk.table} ({_columns(fk.columns)}) → {fk.references} loses its only "
                   f"covering {had.what}")


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
