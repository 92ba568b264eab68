"""Read bundles back from ``generated/``: manifest, files, and the steps the markers describe.

The executor runs exactly the reviewed SQL: each step's statements are split out of the
bundle file (pglast's splitter, which understands dollar quotes), never re-generated.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from dbdeploy.errors import IntegrityError
from dbdeploy.render.markers import BATCH_BEGIN, BATCH_END, ParsedStep, checksum, parse_steps


@dataclass(frozen=True)
class ExecStep:
    number: int
    kind: str
    transactional: bool
    lock: str
    target: str
    summary: str
    statements: tuple[str, ...]
    batch: str | None = None      # backfills: the one-batch statement the executor loops over

    @property
    def text(self) -> str:
        return ";\n".join(self.statements) + ";"


@dataclass(frozen=True)
class Script:
    preamble: tuple[str, ...]
    steps: tuple[ExecStep, ...]
    postamble: tuple[str, ...]
    checksum: str


def _statements(text: str) -> list[str]:
    from pglast import split  # parsing is needed only for bundles that are about to run

    return [s.strip() for s in split(text, with_parser=False) if _has_code(s)]


def _has_code(statement: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in statement.splitlines())


def _code(statement: str) -> str:
    return "\n".join(line for line in statement.splitlines() if not line.strip().startswith("--")).strip()


def _exec_step(step: ParsedStep) -> ExecStep:
    lines = step.block.splitlines()
    summary = lines[1][3:] if len(lines) > 1 and lines[1].startswith("-- ") else step.kind
    statements = _statements(step.block)
    if step.transactional:
        statements = [s for s in statements if _code(s).upper() not in ("BEGIN", "COMMIT")]
    batch = None
    if BATCH_BEGIN in step.block:
        inner = step.block.split(BATCH_BEGIN, 1)[1].split(BATCH_END, 1)[0]
        batch = "\n".join(line.strip() for line in inner.strip().splitlines())
    return ExecStep(step.number, step.kind, step.transactional, step.lock, step.target, summary,
                    tuple(_code(s) if not s.lstrip().startswith("--") else _code(s) for s in statements), batch)


def parse_script(text: str) -> Script:
    preamble, steps, postamble = parse_steps(text)
    return Script(tuple(_code(s) for s in _statements(preamble)), tuple(_exec_step(s) for s in steps),
                  tuple(_code(s) for s in _statements(postamble)), checksum([s.block for s in steps]))


@dataclass(frozen=True)
class BundleOnDisk:
    folder: Path
    manifest: dict

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def label(self) -> str:
        return f"V{self.version}"

    @property
    def checksum(self) -> str:
        return self.manifest["checksum"]

    @property
    def destructive(self) -> bool:
        return bool(self.manifest.get("destructive"))

    def path(self, which: str) -> Path:
        return self.folder / self.manifest["files"][which]["name"]

    @cached_property
    def forward(self) -> Script:
        return parse_script(self.path("forward").read_text())

    @cached_property
    def rollback(self) -> Script:
        return parse_script(self.path("rollback").read_text())

    def problems(self) -> list[str]:
        """Edits made to the bundle after it was generated."""
        found = []
        for which in self.manifest["files"]:
            path = self.path(which)
            if not path.is_file():
                found.append(f"{path} is missing")
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != self.manifest["files"][which]["sha256"]:
                found.append(f"{path} was edited after it was generated (sha256 differs from manifest.json)")
        return found

    def steps_problem(self) -> str | None:
        """Checked when the bundle is about to run (it needs the SQL parsed anyway)."""
        if self.forward.checksum != self.checksum:
            return f"{self.path('forward')}: its steps do not match the manifest checksum"
        return None


def load_bundles(generated: Path) -> list[BundleOnDisk]:
    generated = Path(generated)
    if not generated.is_dir():
        raise IntegrityError(f"no bundles: {generated} does not exist (run `dbdeploy generate`)")
    bundles = []
    for folder in sorted(generated.iterdir()):
        if not (folder.is_dir() and folder.name.startswith("V") and "__" in folder.name):
            continue
        manifest_path = folder / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text())
            manifest["version"], manifest["files"]["forward"]["name"], manifest["checksum"]  # noqa: B018
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{manifest_path} is missing or malformed ({exc}); run `dbdeploy generate`") from None
        bundles.append(BundleOnDisk(folder, manifest))
    return sorted(bundles, key=lambda b: int(b.version))
