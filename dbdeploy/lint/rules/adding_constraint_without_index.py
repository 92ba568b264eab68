"""ALTER TABLE … ADD PRIMARY KEY / UNIQUE / EXCLUDE (columns) in RawSQL: the constraint's index is built
(and, for a primary key, the columns scanned for NULLs) under ACCESS EXCLUSIVE.

PostgreSQL docs, ALTER TABLE: ``ADD table_constraint`` for a primary key, unique or exclusion constraint
creates its index (a full build) and, for a primary key on a nullable column, ``SET NOT NULL`` (a full
scan) — all while holding ACCESS EXCLUSIVE, so reads and writes of the table wait. ``ADD PRIMARY KEY`` /
``ADD UNIQUE`` ``USING INDEX`` over an index built concurrently (on columns already proven NOT NULL) is
catalog only. An exclusion constraint has no such form: ``USING INDEX`` takes only unique indexes and
EXCLUDE cannot be ``NOT VALID`` (PostgreSQL docs, ALTER TABLE: "ADD table_constraint [ NOT VALID ]" —
"currently only allowed for foreign key and CHECK constraints" in PostgreSQL 15–17).
"""

from __future__ import annotations

from pglast import ast
from pglast.enums import AlterTableType, ConstrType

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.lint.rules._sql import alter_table_commands

ID = "adding-constraint-without-index"
SEVERITY = "error"
PROBLEM = ("ADD PRIMARY KEY / UNIQUE / EXCLUDE (columns) on an existing table builds the constraint's index (and "
           "checks a primary key's columns for NULLs) while holding ACCESS EXCLUSIVE: reads and writes of the table "
           "wait for the whole build.")
FIX = ("Primary key: AddPrimaryKey; unique: AddUnique (both build the index concurrently, then attach it with "
       "USING INDEX), or build the index concurrently in its own RawSQL and add the constraint USING INDEX. "
       "Exclusion: PostgreSQL has no online form — declare it when the table is created (CreateTable "
       "exclusions=[…]), or add it in a maintenance window with allow={\"adding-constraint-without-index\": "
       "\"why the lock is acceptable\"}.")

_KINDS = {ConstrType.CONSTR_PRIMARY: "PRIMARY KEY", ConstrType.CONSTR_UNIQUE: "UNIQUE",
          ConstrType.CONSTR_EXCLUSION: "EXCLUDE"}


def check(ctx: OpContext):
    for stmt, node, table, cmd in alter_table_commands(ctx.forward):
        if cmd.subtype != AlterTableType.AT_AddConstraint or not isinstance(cmd.def_, ast.Constraint):
            continue
        con = cmd.def_
        if con.contype in _KINDS and not con.indexname and not ctx.relation_is_new(node.relation, stmt):
            name = f" {con.conname}" if con.conname else ""
            how = " (no online form exists)" if con.contype == ConstrType.CONSTR_EXCLUSION else " without USING INDEX"
            yield f"{stmt.label()} (adds {_KINDS[con.contype]}{name} to {table}{how})"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
