"""With no configuration at all, `dbdeploy generate && dbdeploy apply` works: dev is an
embedded PostgreSQL (pgserver) under .dbdeploy/, started on demand and reused."""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest

from tests.executor_support import REPO, Project


@pytest.fixture
def bare_project():
    # A short path: the embedded server's unix socket lives in its data folder.
    root = Path(tempfile.mkdtemp(prefix="dbdp-", dir="/tmp"))
    shutil.copytree(REPO / "specs", root / "specs")
    yield Project(root)
    pgdata = root / ".dbdeploy" / "pgdata"
    if pgdata.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
        pgserver.get_server(pgdata, cleanup_mode="stop").cleanup()
    shutil.rmtree(root, ignore_errors=True)


def test_generate_and_apply_with_no_configuration(bare_project: Project) -> None:
    assert not (bare_project.root / "dbdeploy.toml").exists()
    generated = bare_project.run("generate")
    assert generated.returncode == 0, generated.stderr
    applied = bare_project.run("apply")
    assert applied.returncode == 0, applied.stderr
    assert "dev: applied V001, V002, V003" in applied.stdout
    assert (bare_project.root / ".dbdeploy" / "pgdata" / "PG_VERSION").is_file()

    # Reused, not re-created: the history survives into the next command.
    status = bare_project.run("status", "--json")
    assert status.returncode == 0, status.stderr
    assert {r["state"] for r in json.loads(status.stdout)} == {"applied"}
    assert {r["environment"] for r in json.loads(status.stdout)} == {"dev"}
    again = bare_project.run("apply")
    assert again.returncode == 0 and "up to date" in again.stdout
    assert bare_project.run("verify").returncode == 0
