"""Every operation has every part a reviewer relies on (CONTRIBUTING.md, "Adding an operation").

An operation's knowledge lives in several places; forgetting one used to fail silently (a new
operation without a round trip was simply never applied to a real database by the suite). This
test lists, per operation type, each part that is missing, and fails naming them all:

- a golden case (``tests/golden_cases.py``): its bundle is reviewed byte for byte;
- a round-trip case (``tests/test_ops_roundtrip.py``): forward, rollback and re-forward on both
  servers with rows, executor and psql alike;
- a schema-state case (``tests/test_schema_state.py``): what its ``apply()`` records;
- expectations: it overrides ``expects()`` and every kind its golden case plans has one catalog
  check (``dbdeploy verify`` and the generated tests run the same check);
- a checklist contribution: its ``checklist()`` adds something for its golden case;
- a README row in the spec reference table ("A spec") and its name in the DSL (``dbdeploy._DSL``).

It checks that each part exists, not that it is right: the rollback and its preflight, refusals,
the README's Rollback row and the golden bytes are for the author and the reviewer
(CONTRIBUTING.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import dbdeploy
from dbdeploy.bundle import catalog_checks
from dbdeploy.bundle.expectations import to_json
from dbdeploy.ops import OPERATION_TYPES, SchemaState
from dbdeploy.ops.base import ChecklistItems, Operation
from dbdeploy.plan.migration_plan import plan_migration
from tests import golden_cases
from tests import test_ops_roundtrip as roundtrip
from tests import test_schema_state as schema_state

README = Path(__file__).resolve().parent.parent / "README.md"

# What a checklist contribution may hold that a reader sees (the other fields inform later operations).
_SHOWN = ("backups", "prerequisites", "health_checks", "watch", "notes", "rollback_notes")


def _op_types(migrations) -> set[type]:
    return {type(op) for migration in migrations for op in migration.operations}


def _golden_plans(op_type: type):
    """(operation, its checklist part, the plan's expectations) for every ``op_type`` operation in the
    last migration of each golden case that has one."""
    found = []
    for migrations in golden_cases.CASES.values():
        if op_type not in _op_types(migrations[-1:]):
            continue
        state = SchemaState(complete=True)
        plans = [plan_migration(m, state) for m in migrations]
        last = plans[-1]
        for op, part in zip(last.migration.operations, last.checklist, strict=True):
            if type(op) is op_type:
                found.append((op, part, to_json(last.expects)))
    return found


def _readme_spec_rows() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## A spec")
    end = text.index("\n## ", start + 1)
    return "\n".join(line for line in text[start:end].splitlines() if line.startswith("| "))


def _missing_parts(op_type: type) -> list[str]:
    name, missing = op_type.__name__, []
    if not any(op_type in _op_types(ms) for ms in golden_cases.CASES.values()):
        missing.append("a golden case in tests/golden_cases.py (then UPDATE_GOLDEN=1 pytest tests/test_golden.py "
                       "tests/test_checklist.py)")
    if not any(not callable(case.migrations) and op_type in _op_types(case.migrations) for case in roundtrip.CASES):
        missing.append("a round-trip case in tests/test_ops_roundtrip.py CASES (with rows in the tables it changes)")
    if op_type.kind not in schema_state.CASES:
        missing.append(f"a schema-state case {op_type.kind!r} in tests/test_schema_state.py CASES")
    if op_type.apply is Operation.apply and op_type.kind not in schema_state.CASES:
        missing.append("an apply() recording its effect on SchemaState")
    if op_type.expects is Operation.expects:
        missing.append("an expects() returning what the database holds after it (bundle/expectations.py)")
    if op_type.checklist is Operation.checklist:
        missing.append("a checklist() contribution (ops/base.py ChecklistItems)")
    try:
        planned = _golden_plans(op_type)
    except TypeError as exc:   # expectations.to_json refuses a kind that is not registered
        missing.append(f"its expectation kind registered in bundle/expectations.py KINDS ({exc})")
        planned = []
    for op, part, expects in planned:
        unknown = sorted({e["object"] for e in expects} - set(catalog_checks.CHECKS))
        if unknown:
            missing.append(f"a catalog check for expectation kind(s) {unknown} (bundle/catalog_checks.py CHECKS)")
        if isinstance(part, ChecklistItems) and not any(getattr(part, f) for f in _SHOWN):
            missing.append(f"a checklist entry for its golden case ({op.describe()} adds nothing a reader sees)")
    if name not in dbdeploy._DSL:
        missing.append("its name among the DSL names in dbdeploy/__init__.py (_DSL), so specs can import it")
    if not re.search(rf"`{name}`", _readme_spec_rows()):
        missing.append("a row in README.md's spec reference table (section 'A spec')")
    return missing


@pytest.mark.parametrize("op_type", OPERATION_TYPES, ids=[t.__name__ for t in OPERATION_TYPES])
def test_every_operation_has_every_part(op_type: type) -> None:
    missing = _missing_parts(op_type)
    assert not missing, f"{op_type.__name__} lacks:\n  - " + "\n  - ".join(missing)


def test_the_check_notices_a_missing_part() -> None:
    """The check itself: an operation type that exists nowhere else lacks every part."""

    class Undocumented(Operation):
        kind = "undocumented_for_this_test"

    missing = _missing_parts(Undocumented)
    for part in ("golden case", "round-trip case", "schema-state case", "apply()", "expects()", "checklist()",
                 "README.md", "DSL names"):
        assert any(part in m for m in missing), f"{part!r} not reported: {missing}"


# Kinds whose rollback leaves nothing to check: an extension dbdeploy may not remove (others may use
# it), a RawSQL verify query (its rollback is the spec's own SQL), a backup (only made by a rollback).
_NOTHING_AFTER_ROLLBACK = {"extension", "sql", "backup"}


def test_every_expectation_kind_says_what_its_rollback_leaves() -> None:
    """The generated tests' ``-m rolled_back`` group comes from each kind's ``after_rollback`` (one
    definition per kind, next to its forward form), not from a second, untyped walk over the JSON."""
    from dbdeploy.bundle import expectations

    silent = sorted(kind for kind, cls in expectations.KINDS.items()
                    if cls.after_rollback is expectations.Expectation.after_rollback
                    and kind not in _NOTHING_AFTER_ROLLBACK)
    assert not silent, f"expectation kinds without after_rollback(): {silent}"
