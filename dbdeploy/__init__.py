"""dbdeploy: PostgreSQL migrations as typed Python specs.

The names below are the public spec DSL: a spec file imports them (``from dbdeploy import
CreateTable, Column, Migration``) and defines module-level ``Migration`` objects. They are
loaded on first use, so the CLI and the executor start without importing the spec machinery
(pydantic models, the SQL parser) when a command does not need it.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_DSL = {
    **dict.fromkeys(
        ("AddCheck", "AddColumn", "AddForeignKey", "AddUnique", "Backfill", "CreateIndex", "CreateSchema",
         "CreateTable", "DropColumn", "DropIndex", "DropTable", "RawSQL", "RequireExtension", "SeedRows"),
        "dbdeploy.ops"),
    **dict.fromkeys(("RenameColumn", "RenameTable", "Contract"), "dbdeploy.ops"),
    **dict.fromkeys(("SetNotNull", "DropNotNull", "SetDefault", "DropDefault"), "dbdeploy.ops"),
    **dict.fromkeys(("AddPrimaryKey", "DropConstraint", "RenameConstraint", "RenameIndex"), "dbdeploy.ops"),
    "AlterColumnType": "dbdeploy.ops",
    **dict.fromkeys(("CreateView", "ReplaceView", "DropView"), "dbdeploy.ops"),
    **dict.fromkeys(("CreateMaterializedView", "RefreshMaterializedView"), "dbdeploy.ops"),
    **dict.fromkeys(("CreateEnum", "AddEnumValue", "RenameEnumValue", "DropEnum"), "dbdeploy.ops"),
    "CreateDomain": "dbdeploy.ops",
    "CreateCompositeType": "dbdeploy.ops",
    "CommentOn": "dbdeploy.ops",
    **dict.fromkeys(("CreateSequence", "AlterSequence", "SetSequenceValue"), "dbdeploy.ops"),
    "CreatePartition": "dbdeploy.ops",
    **dict.fromkeys(("Check", "Column", "ForeignKey", "Index", "Unique"), "dbdeploy.model.components"),
    "Migration": "dbdeploy.ops.migration",
    "Exclusion": "dbdeploy.model.components",
    **dict.fromkeys(("CreateFunction", "CreateTrigger", "ReplaceFunction", "DropFunction", "DropTrigger",
                      "CreateProcedure"),
                     "dbdeploy.ops"),
}

__all__ = [*sorted(_DSL), "__version__"]


def __getattr__(name: str):
    if name in _DSL:
        value = getattr(importlib.import_module(_DSL[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dbdeploy' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_DSL])
