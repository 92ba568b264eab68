"""ALTER TABLE … ADD PRIMARY KEY (columns) in RawSQL: the index is built, and the columns scanned for NULLs,
under ACCESS EXCLUSIVE.

PostgreSQL docs, ALTER TABLE: ``ADD table_constraint`` for a primary key creates its unique index (a full
build) and, for a nullable column, ``SET NOT NULL`` (a full scan) — all while holding ACCESS EXCLUSIVE,
so reads and writes of the table wait for both. ``ADD PRIMARY KEY USING INDEX`` over an index built
concurrently, on columns already proven NOT NULL, is catalog only.
"""

from __future__ import annotations

from pglast import ast
from pglast.enums import AlterTableType, ConstrType

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.lint.rules._sql import alter_table_commands

ID = "adding-primary-key-without-index"
SEVERITY = "error"
PROBLEM = ("ADD PRIMARY KEY (columns) on an existing table builds the unique index and checks the columns for NULLs "
           "while holding ACCESS EXCLUSIVE: reads and writes of the table wait for the whole build and scan.")
FIX = ("Use AddPrimaryKey (CREATE UNIQUE INDEX CONCURRENTLY, NOT NULL through validated CHECKs, then ADD PRIMARY KEY "
       "USING INDEX), or build the index concurrently in its own RawSQL and add the key with USING INDEX.")


def check(ctx: OpContext):
    for stmt, node, table, cmd in alter_table_commands(ctx.forward):
        if cmd.subtype != AlterTableType.AT_AddConstraint or not isinstance(cmd.def_, ast.Constraint):
            continue
        con = cmd.def_
        if con.contype == ConstrType.CONSTR_PRIMARY and not con.indexname and not ctx.relation_is_new(
                node.relation, stmt):
            name = f" {con.conname}" if con.conname else ""
            yield f"{stmt.label()} (adds PRIMARY KEY{name} to {table} without USING INDEX)"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
