"""DropDefault: remove a column's default (catalog only); the rollback restores the previous one.

Everything but the statement is SetDefault's (:class:`dbdeploy.ops.set_default.ColumnDefaultChange`):
the keeper saving the previous default at forward time, the rollback setting it back from the
keeper's catalog entry, the preflight refusing when the saved default is missing.
"""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql

from dbdeploy.ops.common import S
from dbdeploy.ops.set_default import ColumnDefaultChange
from dbdeploy.sql import ident, qualified


class DropDefault(ColumnDefaultChange):
    """Drop the default of ``column`` of ``table`` (``DROP DEFAULT``; a column without one is left as
    it is). The rollback restores the default it had before the version."""

    kind: ClassVar[str] = "drop_default"

    def new_default(self):
        return None

    def change(self) -> sql.Composable:
        return S("ALTER TABLE {t} ALTER COLUMN {c} DROP DEFAULT;").format(t=qualified(self.table), c=ident(self.column))

    def describe_change(self) -> str:
        return f"drop the default of {self.column}"
