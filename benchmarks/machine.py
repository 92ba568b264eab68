"""What the numbers were measured on."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path

from benchmarks.server import Server

REPO = Path(__file__).resolve().parent.parent


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return None


def git_revision() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "dbdeploy"], cwd=REPO, capture_output=True,
                               text=True, timeout=10, check=True).stdout.strip()
        return head + (" + uncommitted changes in dbdeploy/" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def source_digest() -> str:
    """A digest of the dbdeploy package this process imports (to notice edits made during a run)."""
    import dbdeploy

    root = Path(dbdeploy.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".j2"):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def load_average() -> list[str]:
    return _read("/proc/loadavg").split()[:3]


def other_activity(server: Server) -> int:
    """Active sessions on the server that are not this run's (a hint of background noise)."""
    with server.connect() as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND state = 'active'"
            " AND backend_type = 'client backend' AND NOT starts_with(coalesce(datname, ''), 'dbdeploy_bench_')"
        ).fetchone()[0]


def describe(server: Server) -> dict:
    from dbdeploy import __version__

    settings = server.settings(["shared_buffers", "max_wal_size", "synchronous_commit", "fsync", "autovacuum",
                                "work_mem", "maintenance_work_mem", "max_parallel_maintenance_workers"])
    memory = memory_gib()
    return {
        "cores": os.cpu_count(),
        "memory": f"{memory:.1f} GiB" if memory else "unknown",
        "cpu": cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": server.version_string,
        "server_source": server.source,
        "server_settings": settings,
        "dbdeploy": __version__,
        "git": git_revision(),
        "source_digest": source_digest(),
        "load_average": load_average(),
        "other_active_sessions": other_activity(server),
    }
