"""dbdeploy: PostgreSQL migrations as typed Python specs.

The names below are the public spec DSL: a spec file does ``from dbdeploy import *``-style
imports of these and defines module-level ``Migration`` objects.
"""

from dbdeploy.ops import (
    AddCheck,
    AddColumn,
    AddForeignKey,
    AddUnique,
    Backfill,
    CreateIndex,
    CreateSchema,
    CreateTable,
    DropColumn,
    DropIndex,
    DropTable,
    RawSQL,
    RequireExtension,
    SeedRows,
)
from dbdeploy.spec.components import Check, Column, ForeignKey, Index, Unique
from dbdeploy.spec.migration import Migration

__version__ = "0.1.0"

__all__ = [
    "AddCheck", "AddColumn", "AddForeignKey", "AddUnique", "Backfill", "Check", "Column", "CreateIndex",
    "CreateSchema", "CreateTable", "DropColumn", "DropIndex", "DropTable", "ForeignKey", "Index",
    "Migration", "RawSQL", "RequireExtension", "SeedRows", "Unique", "__version__",
]
