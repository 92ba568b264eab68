"""Helpers for executor tests: a project folder with config and bundles, and the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DBDEPLOY = str(Path(sys.executable).parent / "dbdeploy")


@dataclass
class Project:
    root: Path

    def run(self, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("DBDEPLOY_")}
        environ.update(env or {})
        return subprocess.run([DBDEPLOY, *args], cwd=self.root, capture_output=True, text=True, env=environ,
                              timeout=timeout, check=False)

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("DBDEPLOY_")}
        environ.update(env or {})
        return subprocess.Popen([DBDEPLOY, *args], cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=environ)

    @property
    def generated(self) -> Path:
        return self.root / "generated"


def make_project(root: Path, dsn: str | None = None, *, specs: Path | None = None, extra_env: str = "",
                 lock_timeout: str = "2s", retries: int = 3) -> Project:
    """A project folder with the given specs (default: the repo's examples), generated bundles
    and a dbdeploy.toml whose `test` environment points at ``dsn``."""
    shutil.copytree(specs or REPO / "specs", root / "specs")
    config = []
    if dsn is not None:
        config += [
            "[environments.test]",
            f"dsn = {json.dumps(dsn)}",
            f'lock_timeout = "{lock_timeout}"',
            f"retries = {retries}",
            "",
        ]
    (root / "dbdeploy.toml").write_text("\n".join(config) + extra_env)
    project = Project(root)
    result = project.run("generate")
    assert result.returncode == 0, result.stderr
    return project


def write_spec(folder: Path, filename: str, source: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / filename).write_text(source)
