"""Operations: one module per operation, all behind :class:`dbdeploy.ops.base.Operation`."""

from dbdeploy.bundle.step import Step
from dbdeploy.ops.add_check import AddCheck
from dbdeploy.ops.add_column import AddColumn
from dbdeploy.ops.add_foreign_key import AddForeignKey
from dbdeploy.ops.add_primary_key import AddPrimaryKey
from dbdeploy.ops.add_unique import AddUnique
from dbdeploy.ops.alter_column_type import AlterColumnType
from dbdeploy.ops.backfill import Backfill
from dbdeploy.ops.base import Operation, PlanContext, SchemaState
from dbdeploy.ops.contract import Contract
from dbdeploy.ops.create_function import CreateFunction, CreateProcedure
from dbdeploy.ops.create_index import CreateIndex
from dbdeploy.ops.create_schema import CreateSchema
from dbdeploy.ops.create_table import CreateTable
from dbdeploy.ops.create_trigger import CreateTrigger
from dbdeploy.ops.drop_column import DropColumn
from dbdeploy.ops.drop_constraint import DropConstraint
from dbdeploy.ops.drop_default import DropDefault
from dbdeploy.ops.drop_function import DropFunction
from dbdeploy.ops.drop_index import DropIndex
from dbdeploy.ops.drop_not_null import DropNotNull
from dbdeploy.ops.drop_table import DropTable
from dbdeploy.ops.drop_trigger import DropTrigger
from dbdeploy.ops.raw_sql import RawSQL
from dbdeploy.ops.rename_column import RenameColumn
from dbdeploy.ops.rename_constraint import RenameConstraint
from dbdeploy.ops.rename_index import RenameIndex
from dbdeploy.ops.rename_table import RenameTable
from dbdeploy.ops.replace_function import ReplaceFunction
from dbdeploy.ops.require_extension import RequireExtension
from dbdeploy.ops.seed_rows import SeedRows
from dbdeploy.ops.set_default import SetDefault
from dbdeploy.ops.set_not_null import SetNotNull

OPERATION_TYPES = (
    CreateSchema, RequireExtension, CreateTable, AddColumn, CreateIndex, AddForeignKey, AddCheck,
    AddUnique, Backfill, SeedRows, DropIndex, DropColumn, DropTable, RawSQL,
    RenameColumn, RenameTable, Contract,
    SetNotNull, DropNotNull, SetDefault, DropDefault,
    RenameIndex, RenameConstraint, DropConstraint, AddPrimaryKey,
    AlterColumnType,
    CreateFunction, CreateTrigger, ReplaceFunction, DropFunction, DropTrigger, CreateProcedure,
)

AnyOperation = (
    CreateSchema | RequireExtension | CreateTable | AddColumn | CreateIndex | AddForeignKey | AddCheck
    | AddUnique | Backfill | SeedRows | DropIndex | DropColumn | DropTable | RawSQL
    | RenameColumn | RenameTable | Contract
    | SetNotNull | DropNotNull | SetDefault | DropDefault
    | RenameIndex | RenameConstraint | DropConstraint | AddPrimaryKey
    | AlterColumnType
    | CreateFunction | CreateTrigger | ReplaceFunction | DropFunction | DropTrigger | CreateProcedure
)

__all__ = [
    "OPERATION_TYPES", "AddCheck", "AddColumn", "AddForeignKey", "AddUnique", "AnyOperation", "Backfill",
    "CreateIndex", "CreateSchema", "CreateTable", "DropColumn", "DropIndex", "DropTable", "Operation",
    "PlanContext", "RawSQL", "RequireExtension", "SchemaState", "SeedRows", "Step",
    "RenameColumn", "RenameTable", "Contract",
    "SetNotNull", "DropNotNull", "SetDefault", "DropDefault",
    "AddPrimaryKey", "DropConstraint", "RenameConstraint", "RenameIndex",
    "AlterColumnType",
    "CreateFunction", "CreateTrigger", "ReplaceFunction", "DropFunction", "DropTrigger", "CreateProcedure",
]
