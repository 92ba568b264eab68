"""Operations: one module per operation, all behind :class:`dbdeploy.ops.base.Operation`."""

from dbdeploy.bundle.step import Step
from dbdeploy.ops.add_check import AddCheck
from dbdeploy.ops.add_column import AddColumn
from dbdeploy.ops.add_enum_value import AddEnumValue
from dbdeploy.ops.add_foreign_key import AddForeignKey
from dbdeploy.ops.add_primary_key import AddPrimaryKey
from dbdeploy.ops.add_unique import AddUnique
from dbdeploy.ops.alter_column_type import AlterColumnType
from dbdeploy.ops.alter_sequence import AlterSequence
from dbdeploy.ops.backfill import Backfill
from dbdeploy.ops.base import Operation, PlanContext, SchemaState
from dbdeploy.ops.comment_on import CommentOn
from dbdeploy.ops.contract import Contract
from dbdeploy.ops.create_composite_type import CreateCompositeType
from dbdeploy.ops.create_domain import CreateDomain
from dbdeploy.ops.create_enum import CreateEnum
from dbdeploy.ops.create_function import CreateFunction, CreateProcedure
from dbdeploy.ops.create_index import CreateIndex
from dbdeploy.ops.create_materialized_view import CreateMaterializedView
from dbdeploy.ops.create_partition import CreatePartition
from dbdeploy.ops.create_schema import CreateSchema
from dbdeploy.ops.create_sequence import CreateSequence
from dbdeploy.ops.create_table import CreateTable
from dbdeploy.ops.create_trigger import CreateTrigger
from dbdeploy.ops.create_view import CreateView
from dbdeploy.ops.drop_column import DropColumn
from dbdeploy.ops.drop_constraint import DropConstraint
from dbdeploy.ops.drop_default import DropDefault
from dbdeploy.ops.drop_enum import DropEnum
from dbdeploy.ops.drop_function import DropFunction
from dbdeploy.ops.drop_index import DropIndex
from dbdeploy.ops.drop_not_null import DropNotNull
from dbdeploy.ops.drop_table import DropTable
from dbdeploy.ops.drop_trigger import DropTrigger
from dbdeploy.ops.drop_view import DropView
from dbdeploy.ops.raw_sql import RawSQL
from dbdeploy.ops.refresh_materialized_view import RefreshMaterializedView
from dbdeploy.ops.rename_column import RenameColumn
from dbdeploy.ops.rename_constraint import RenameConstraint
from dbdeploy.ops.rename_enum_value import RenameEnumValue
from dbdeploy.ops.rename_index import RenameIndex
from dbdeploy.ops.rename_table import RenameTable
from dbdeploy.ops.replace_function import ReplaceFunction
from dbdeploy.ops.replace_view import ReplaceView
from dbdeploy.ops.require_extension import RequireExtension
from dbdeploy.ops.seed_rows import SeedRows
from dbdeploy.ops.set_default import SetDefault
from dbdeploy.ops.set_not_null import SetNotNull
from dbdeploy.ops.set_sequence_value import SetSequenceValue

OPERATION_TYPES = (
    CreateSchema, RequireExtension, CreateTable, AddColumn, CreateIndex, AddForeignKey, AddCheck,
    AddUnique, Backfill, SeedRows, DropIndex, DropColumn, DropTable, RawSQL,
    RenameColumn, RenameTable, Contract,
    SetNotNull, DropNotNull, SetDefault, DropDefault,
    RenameIndex, RenameConstraint, DropConstraint, AddPrimaryKey,
    AlterColumnType,
    CreateView, ReplaceView, DropView,
    CreateMaterializedView, RefreshMaterializedView,
    CreateEnum, AddEnumValue, RenameEnumValue, DropEnum,
    CreateDomain, CreateCompositeType,
    CommentOn,
    CreateSequence, AlterSequence, SetSequenceValue,
    CreatePartition,
    CreateFunction, CreateTrigger, ReplaceFunction, DropFunction, DropTrigger, CreateProcedure,
)

AnyOperation = (
    CreateSchema | RequireExtension | CreateTable | AddColumn | CreateIndex | AddForeignKey | AddCheck
    | AddUnique | Backfill | SeedRows | DropIndex | DropColumn | DropTable | RawSQL
    | RenameColumn | RenameTable | Contract
    | SetNotNull | DropNotNull | SetDefault | DropDefault
    | RenameIndex | RenameConstraint | DropConstraint | AddPrimaryKey
    | AlterColumnType
    | CreateView | ReplaceView | DropView
    | CreateMaterializedView | RefreshMaterializedView
    | CreateEnum | AddEnumValue | RenameEnumValue | DropEnum
    | CreateDomain | CreateCompositeType
    | CommentOn
    | CreateSequence | AlterSequence | SetSequenceValue
    | CreatePartition
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
    "CreateView", "ReplaceView", "DropView",
    "CreateMaterializedView", "RefreshMaterializedView",
    "CreateEnum", "AddEnumValue", "RenameEnumValue", "DropEnum",
    "CreateDomain", "CreateCompositeType",
    "CommentOn",
    "CreateSequence", "AlterSequence", "SetSequenceValue",
    "CreatePartition",
    "CreateFunction", "CreateTrigger", "ReplaceFunction", "DropFunction", "DropTrigger", "CreateProcedure",
]
