"""A malformed bundle (an edited marker, an unterminated step, a broken manifest) is refused by every
deploy command with one line naming the file, the line (or manifest field) and the fix — a typed
BundleFormatError, exit 3 — never a traceback (issue 11, item 2).

An edited file is normally refused by its manifest sha256 first ("edited"); each case is run both with
the sha256 left as generated and with it updated to match, so the marker reader itself is reached.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DBDEPLOY = Path(sys.executable).parent / "dbdeploy"
V002 = "V002__evolve_site_tracking_events"
FORWARD = f"{V002}/{V002}.sql"

# name → (old, new, count): an edit of V002's forward file
CASES = {
    "missing_field": ("-- dbdeploy:step 3 add_column tx=step lock=", "-- dbdeploy:step 3 add_column lock=", 1),
    "unknown_lock": ("-- dbdeploy:step 3 add_column tx=step lock=ACCESS EXCLUSIVE",
                     "-- dbdeploy:step 3 add_column tx=step lock=ACCESS BOGUS", 1),
    "garbled_marker": ("-- dbdeploy:step 3 add_column", "-- dbdeploy:stpe 3 add_column", 1),
    "batch_rows_not_a_number": ("-- dbdeploy:batch-begin rows=", "-- dbdeploy:batch-begin rows=x", 1),
    "batch_marker_removed": ("-- dbdeploy:batch-end\n", "\n", 1),
    "unterminated_step": ("COMMIT;\n\n-- dbdeploy:step 3 add_column", "\n\n-- dbdeploy:step 3 add_column", 1),
}
COMMANDS = (["apply"], ["apply", "--dry-run"], ["rollback", "--to", "0"], ["status"], ["verify"])


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DBDEPLOY"))}
    env.update(NO_COLOR="1", COLUMNS="200", TERM="dumb")
    return subprocess.run([str(DBDEPLOY), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def _project(tmp_path: Path, case: str, update_sha: bool) -> Path:
    folder = tmp_path / "project"
    shutil.copytree(ROOT / "generated", folder / "generated")
    path = folder / "generated" / FORWARD
    old, new, count = CASES[case]
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= count, case
    path.write_text(text.replace(old, new, count), encoding="utf-8")
    if update_sha:
        manifest_path = folder / "generated" / V002 / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["files"]["forward"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return folder


def _assert_format_error(proc: subprocess.CompletedProcess[str], what: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, (what, proc.returncode, out)
    assert "Traceback" not in out, (what, out)
    assert re.search(re.escape(FORWARD.split("/")[1]) + r":\d+: ", proc.stderr), (what, out)   # file:line
    assert "fix: " in proc.stderr and "dbdeploy generate" in proc.stderr, (what, out)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_malformed_marker_is_one_line_with_file_line_and_fix(case: str, fresh_db, tmp_path: Path) -> None:
    project = _project(tmp_path, case, update_sha=True)
    for command in COMMANDS:
        _assert_format_error(_run(project, *command, "--dsn", fresh_db.dsn), f"{case}: {' '.join(command)}")


def test_an_edited_file_whose_sha_was_not_updated_is_refused_as_edited(fresh_db, tmp_path: Path) -> None:
    project = _project(tmp_path, "unknown_lock", update_sha=False)
    for command in (["apply"], ["apply", "--dry-run"], ["verify"]):
        proc = _run(project, *command, "--dsn", fresh_db.dsn)
        # verify reports the edit among its problems (exit 1); the others refuse to run (exit 3)
        code = 1 if command == ["verify"] else 3
        assert proc.returncode == code and "Traceback" not in proc.stderr, (command, proc.stdout + proc.stderr)
        assert "edited after it was generated" in proc.stdout + proc.stderr, (command, proc.stdout + proc.stderr)
    proc = _run(project, "status", "--dsn", fresh_db.dsn)
    assert proc.returncode == 0 and "edited" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("damage", ["not_json", "no_checksum", "files_not_a_mapping"])
def test_a_manifest_that_does_not_parse_names_the_field(damage: str, fresh_db, tmp_path: Path) -> None:
    folder = tmp_path / "project"
    shutil.copytree(ROOT / "generated", folder / "generated")
    manifest_path = folder / "generated" / V002 / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if damage == "not_json":
        manifest_path.write_text("{ not json")
    else:
        if damage == "no_checksum":
            del manifest["checksum"]
        else:
            manifest["files"] = ["x"]
        manifest_path.write_text(json.dumps(manifest))
    for command in COMMANDS:
        proc = _run(folder, *command, "--dsn", fresh_db.dsn)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 3 and "Traceback" not in out, (damage, command, out)
        assert "manifest.json" in proc.stderr and "fix: " in proc.stderr, (damage, command, out)
        if damage == "no_checksum":
            assert "checksum" in proc.stderr, out
