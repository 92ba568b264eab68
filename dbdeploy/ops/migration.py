"""The Migration model: a version, a name and an ordered list of operations."""

from __future__ import annotations

import re

from pydantic import field_validator, model_validator

from dbdeploy.model.base import SpecModel
from dbdeploy.model.names import check_version
from dbdeploy.ops import AnyOperation, SchemaState
from dbdeploy.ops.walk import walk

_NAME = re.compile(r"[a-z][a-z0-9_]{0,79}\Z")


class Migration(SpecModel):
    version: str
    name: str
    description: str = ""
    operations: list[AnyOperation]

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: object) -> str:
        return check_version(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"name {value!r} must be snake_case (a-z, 0-9, _; starting with a letter; at most "
                             "80 characters): it names the bundle's folder and files — fix: rename it, e.g. "
                             "name=\"add_user_email\"")
        return value

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("description contains a NUL byte — fix: remove the NUL byte (\\x00)")
        return value

    @field_validator("operations")
    @classmethod
    def _operations(cls, value: list) -> list:
        if not value:
            raise ValueError("a migration needs at least one operation — fix: add its operations, or delete "
                             "the spec file")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Migration:
        """Check references between operations of this migration (tables it creates itself)."""
        later_checks = []
        for visit in walk(self.operations, SchemaState(), version=self.version):
            if visit.error is not None:
                raise ValueError(f"operations[{visit.index}] ({visit.op.describe()}): {visit.error}") from None
            later_checks.append(visit)
        _foreign_keys_to_later_tables(self.operations)
        for visit in later_checks:
            try:
                visit.op.check_later(visit.later)
            except ValueError as exc:
                raise ValueError(f"operations[{visit.index}] ({visit.op.describe()}): {exc}") from None
        return self

    @property
    def folder(self) -> str:
        return f"V{self.version}__{self.name}"

    @property
    def destructive(self) -> bool:
        return any(op.destructive for op in self.operations)


def _foreign_keys_to_later_tables(operations: list) -> None:
    """Refuse a foreign key (CreateTable or AddForeignKey) to a table that a later CreateTable of the
    same migration creates: when the bundle runs, the referenced table does not exist yet (an
    ``optional=True`` key is skipped then, not failed, and stays allowed)."""
    from dbdeploy.ops import AddForeignKey, CreateTable

    created_at = {}
    for i, op in enumerate(operations):
        if isinstance(op, CreateTable):
            created_at.setdefault(op.table, i)
    for i, op in enumerate(operations):
        if isinstance(op, CreateTable):
            fks = [(f"foreign_keys[{k}]", fk) for k, fk in enumerate(op.foreign_keys)]
        elif isinstance(op, AddForeignKey):
            fks = [("foreign_key", op.foreign_key)]
        else:
            continue
        for where, fk in fks:
            later = created_at.get(fk.references, -1)
            # optional=True is the documented way for such a key: skipped (NOTICE) while the
            # referenced table is missing, added by a later run; it never fails at apply.
            if later > i and not fk.optional:
                raise ValueError(
                    f"operations[{i}] ({op.describe()}): {where} references {fk.references}, which operations[{later}] "
                    "creates later in this migration, so it does not exist yet when this runs — fix: put the "
                    f"CreateTable of {fk.references} first; for tables that reference each other, leave this "
                    "foreign key out and add it with AddForeignKey after both CreateTables")
