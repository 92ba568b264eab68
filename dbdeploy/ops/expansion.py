"""Expand/contract: an operation run with ``online=True`` keeps the old side working for the
application version still running during a deploy; a later migration's ``Contract`` removes it.

The protocol between an expanding operation and ``Contract`` (``ops/contract.py``):

- the expanding operation derives from :class:`Expands` and, in its ``apply``, calls
  :meth:`SchemaState.open_expansion` when ``online`` is set;
- ``Contract(version=…)`` finds the operations that version left open in ``SchemaState.expansions``
  and renders, for each, the steps below, in the order the expanding migration ran them
  (rollback: reversed).

Each method gets the :class:`~dbdeploy.ops.base.PlanContext` of the *contracting* migration.
"""

from __future__ import annotations

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step


class Expands:
    """Mixin for an operation whose ``online=True`` form is an expansion (old and new side both work)."""

    # A field of the operation (pydantic): annotation only here, so the field shadows no class attribute.
    online: bool

    def contract_apply(self, state) -> None:
        """The schema effect of removing the old side (on :class:`~dbdeploy.ops.base.SchemaState`)."""
        raise NotImplementedError

    def contract_forward(self, ctx) -> list[Step]:
        """Steps that remove the old side (idempotent, short locks)."""
        raise NotImplementedError

    def contract_rollback(self, ctx) -> list[Step]:
        """Steps that put the old side back, with every value written since the contract."""
        raise NotImplementedError

    def contract_rollback_preflight(self, ctx) -> list[Step]:
        """Conditions under which :meth:`contract_rollback` refuses, checked before its first change."""
        return []

    def contract_expects(self, ctx) -> list[expect.Expectation]:
        """What the database holds after the contract (``present=False`` forms: after its rollback)."""
        raise NotImplementedError

    def contract_checklist(self, ctx, earlier):
        """The contract's :class:`~dbdeploy.ops.base.ChecklistItems`."""
        raise NotImplementedError

    def describe_expansion(self) -> str:
        """One line for ``status``: what stays open (e.g. ``public.users.email → email_address``)."""
        raise NotImplementedError
