"""Golden files: the exact SQL each operation renders.

A change to generated SQL must be deliberate: regenerate with ``UPDATE_GOLDEN=1 pytest
tests/test_golden.py`` and review the diff like any other code change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dbdeploy.plan.loader import LoadedMigration
from dbdeploy.plan.migration_plan import plan_all
from dbdeploy.render.bundle import render_bundle
from tests.golden_cases import CASES

GOLDEN = Path(__file__).parent / "golden"


def _render_last(migrations) -> dict[str, str]:
    loaded = [LoadedMigration(m, Path(f"golden_{m.version}.py")) for m in migrations]
    plans = plan_all(loaded)
    return render_bundle(plans[-1], loaded[-1].source.name).files


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_sql_matches_golden(case: str) -> None:
    files = _render_last(CASES[case])
    folder = GOLDEN / case
    if os.environ.get("UPDATE_GOLDEN"):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for name, content in files.items():
            (folder / name).write_text(content)
    expected = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    assert expected == sorted(files), f"golden files for {case} missing; run with UPDATE_GOLDEN=1"
    for name, content in files.items():
        assert (folder / name).read_text() == content, f"{case}/{name} differs from its golden file"


def test_rendering_is_deterministic() -> None:
    for case, migrations in CASES.items():
        assert _render_last(migrations) == _render_last(migrations), case


def test_every_operation_has_a_golden_case() -> None:
    from dbdeploy.ops import OPERATION_TYPES

    used = {type(op) for migrations in CASES.values() for m in migrations for op in m.operations}
    assert set(OPERATION_TYPES) <= used, set(OPERATION_TYPES) - used
