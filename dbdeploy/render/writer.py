"""Write bundles to ``generated/`` (or compare them with it for ``--check``).

Everything is rendered in memory first, so a bad spec writes nothing; each file is then
replaced atomically (write to a temporary name, rename), so a crash never leaves a half file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dbdeploy.bundle.schemas import HISTORY_SCHEMA
from dbdeploy.plan.loader import load_specs
from dbdeploy.plan.migration_plan import plan_all
from dbdeploy.render.bundle import Bundle, render_bundle

GITATTRIBUTES_NAME = ".gitattributes"
GITATTRIBUTES = (
    b"# Written by `dbdeploy generate`. Bundle files are checked byte for byte against the sha256 in\n"
    b"# their manifest.json and run exactly as written: git must never convert their line endings.\n"
    b"* -text\n"
)


def build_bundles(specs_dir: Path, history_schema: str = HISTORY_SCHEMA, *, lint: bool = False,
                  owners: Sequence[str] = (), backup_readers: tuple[str, ...] = ()) -> list[Bundle]:
    """Every migration's bundle, in memory. With ``lint``, error-level lint findings that the specs
    do not allow raise :class:`dbdeploy.lint.LintError` (exit 2) before anything is planned.
    ``owners``: the configured trusted owner roles the bundles' trust check accepts (``owner``).
    ``backup_readers`` go into each bundle's preamble (:mod:`dbdeploy.sql.acl`), not its steps."""
    loaded = load_specs(Path(specs_dir))
    if lint:
        from dbdeploy.lint import lint_migrations, refuse_errors

        refuse_errors(lint_migrations(loaded))
    plans = plan_all(loaded, history_schema)
    return [render_bundle(plan, item.source.name, history_schema, owners, backup_readers)
            for plan, item in zip(plans, loaded, strict=True)]


@dataclass
class Comparison:
    stale: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.stale or self.missing or self.extra)

    def lines(self) -> list[str]:
        return ([f"stale:   {p}" for p in self.stale] + [f"missing: {p}" for p in self.missing]
                + [f"extra:   {p}" for p in self.extra])


def _is_bundle_dir(path: Path) -> bool:
    return path.is_dir() and path.name.startswith("V") and "__" in path.name


def _differs(path: Path, data: bytes) -> str | None:
    """None if ``path`` holds ``data``; else how it differs (its line endings alone, or more)."""
    found = path.read_bytes()
    if found == data:
        return None
    if b"\r\n" in found and found.replace(b"\r\n", b"\n") == data:
        return "only its line endings differ (CRLF)"
    return "content differs"


def compare(bundles: list[Bundle], out_dir: Path) -> Comparison:
    """What ``write`` would change in ``out_dir``: stale, missing and extra files (``.gitattributes`` too)."""
    out_dir = Path(out_dir)
    result = Comparison()
    expected_dirs = {b.folder for b in bundles}
    attributes = out_dir / GITATTRIBUTES_NAME
    if not attributes.is_file():
        result.missing.append(GITATTRIBUTES_NAME)
    elif _differs(attributes, GITATTRIBUTES):
        result.stale.append(GITATTRIBUTES_NAME)
    for bundle in bundles:
        folder = out_dir / bundle.folder
        for name, data in bundle.file_bytes().items():
            path = folder / name
            rel = f"{bundle.folder}/{name}"
            if not path.exists():
                result.missing.append(rel)
            elif (how := _differs(path, data)) is not None:
                result.stale.append(rel if how == "content differs" else f"{rel} ({how})")
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.name not in bundle.files and not path.name.startswith((".", "__pycache__")):
                    result.extra.append(f"{bundle.folder}/{path.name}")
    if out_dir.is_dir():
        for path in sorted(out_dir.iterdir()):
            if _is_bundle_dir(path) and path.name not in expected_dirs:
                result.extra.append(path.name + "/")
    return result


def write(bundles: list[Bundle], out_dir: Path) -> Comparison:
    """Bring ``out_dir`` in line with ``bundles``; returns what had to change."""
    out_dir = Path(out_dir)
    changes = compare(bundles, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _replace(out_dir / GITATTRIBUTES_NAME, GITATTRIBUTES)
    for bundle in bundles:
        folder = out_dir / bundle.folder
        folder.mkdir(exist_ok=True)
        for name, data in bundle.file_bytes().items():
            _replace(folder / name, data)
    for rel in changes.extra:
        path = out_dir / rel.rstrip("/")
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    return changes


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary name, rename), unless it is there already."""
    if path.exists() and path.read_bytes() == data:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
