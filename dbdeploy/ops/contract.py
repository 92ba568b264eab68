"""Contract: remove the old side of every expansion an earlier version opened (ops/expansion.py).

``RenameColumn(…, online=True)``, ``RenameTable(…, online=True)`` and ``AlterColumnType(…,
online=True)`` leave the old name (or type) working beside the new one, for the application
version still running during a deploy. Once every instance runs the new code, a later migration's
``Contract(version="<the expanding version>")`` removes the old side: for each operation that version
left open, in the order it ran them, the operation's own ``contract_forward`` steps (rollback: the
``contract_rollback`` steps, in reverse order). The name follows pgroll's ``complete`` / Rails'
"expand and contract" pattern.

Refused at validation (with every earlier spec known): a version that opened no expansion, one not
applied before the contracting migration in version order, and a version already contracted.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import PrivateAttr, field_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step
from dbdeploy.ops.base import ChecklistItems, Operation, PlanContext, SchemaState


class Contract(Operation):
    """``Contract(version="005")``: close the expansions of V005 (see the module docstring).

    Raises ValueError ("reason — fix: …") at validation when V``version`` left no expansion open before
    this migration."""

    kind: ClassVar[str] = "contract"
    version: str
    _ops: tuple = PrivateAttr(default=())

    @field_validator("version")
    @classmethod
    def _digits(cls, value: str) -> str:
        if not value.isdigit():
            raise ValueError(f"version {value!r} is not a version number — fix: give the version of the migration "
                             "that ran the online operations, e.g. version=\"005\"")
        return value

    def target(self) -> str:
        return f"V{self.version}"

    def describe(self) -> str:
        return f"{self.kind} V{self.version}"

    @property
    def expansions(self) -> tuple:
        """The operations whose old side this contract removes (known after :meth:`apply`)."""
        return self._ops

    def apply(self, state: SchemaState) -> None:
        at = state.at.version
        key = next((v for v in state.expansions if int(v) == int(self.version)), None)
        if at and int(self.version) >= int(at):
            raise ValueError(f"Contract(version={self.version!r}) in V{at}: a contract removes the old side of an "
                             "earlier version's expansion — fix: contract in a migration after "
                             f"V{self.version}, once every application instance uses the new names")
        if key is None:
            self._ops = ()
            if not state.complete:
                return      # validated on its own: the earlier migrations are not known here
            raise ValueError(f"V{self.version} has no open expansion to contract (no RenameColumn/RenameTable/"
                             "AlterColumnType with online=True in it, or it is contracted already) — fix: give the "
                             "version of the migration that ran the online operation, or remove this Contract")
        self._ops = state.expansions.pop(key)
        for op in self._ops:
            op.contract_apply(state)

    def forward(self, ctx: PlanContext) -> list[Step]:
        return [step for op in self._ops for step in op.contract_forward(ctx)]

    def rollback(self, ctx: PlanContext) -> list[Step]:
        return [step for op in reversed(self._ops) for step in op.contract_rollback(ctx)]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        return [check for op in reversed(self._ops) for check in op.contract_rollback_preflight(ctx)]

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [e for op in self._ops for e in op.contract_expects(ctx)]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        merged = ChecklistItems()
        for op in self._ops:
            merged.add(op.contract_checklist(ctx, earlier))
        return merged


__all__ = ["Contract"]
