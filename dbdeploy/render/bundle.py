"""Render a planned migration into its bundle: forward SQL, rollback SQL and manifest.

Output is a pure function of the specs (no timestamps, sorted JSON), so ``generate --check``
can tell whether ``generated/`` is stale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import jinja2

from dbdeploy.bundle import bookkeeping
from dbdeploy.bundle.expectations import to_json
from dbdeploy.bundle.manifest import MANIFEST_FORMAT, MANIFEST_NAME, FileEntry, Manifest, StepEntry, file_names
from dbdeploy.bundle.markers import (
    POSTAMBLE,
    PREAMBLE,
    MarkerError,
    checksum,
    parse_steps,
    render_step,
    statement_index_of,
)
from dbdeploy.bundle.schemas import BACKUP_SCHEMA, HISTORY_SCHEMA
from dbdeploy.errors import SpecError
from dbdeploy.ops.contract import Contract
from dbdeploy.ops.expansion import Expands
from dbdeploy.plan.migration_plan import PREFLIGHT_KIND, MigrationPlan
from dbdeploy.render.checklist import CHECKLIST_NAME, render_checklist
from dbdeploy.render.testgen import render_test_file, test_file_name
from dbdeploy.sql.psql import PsqlScriptError, split_script

__all__ = ["BACKUP_SCHEMA", "HISTORY_SCHEMA", "MANIFEST_FORMAT", "Bundle", "file_names", "render_bundle"]

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("dbdeploy.render", "templates"),
    autoescape=False,  # noqa: S701 — SQL text, every value in it is already quoted by psycopg.sql
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True)
class Bundle:
    folder: str
    files: dict[str, str]      # file name → content, in writing order

    def file_bytes(self) -> dict[str, bytes]:
        return {name: content.encode("utf-8") for name, content in self.files.items()}


def render_bundle(plan: MigrationPlan, source_name: str, history_schema: str = HISTORY_SCHEMA,
                  owners: Sequence[str] = (), backup_readers: tuple[str, ...] = ()) -> Bundle:
    m = plan.migration
    forward_name, rollback_name = file_names(m.folder, m.version, m.name)
    forward_blocks = [render_step(i, s) for i, s in enumerate(plan.forward, 1)]
    rollback_blocks = [render_step(i, s) for i, s in enumerate(plan.rollback, 1)]
    digest = checksum(forward_blocks)
    common = {
        "folder": m.folder, "source": source_name, "label": f"V{m.version}",
        "backup_schema": BACKUP_SCHEMA, "preamble_marker": PREAMBLE, "postamble_marker": POSTAMBLE,
        "description_lines": m.description.splitlines() or [m.name.replace("_", " ")],
    }
    ensure = bookkeeping.ensure_tables(history_schema, BACKUP_SCHEMA, owners, backup_readers)
    forward = _ENV.get_template("forward.sql.j2").render(
        **common, filename=forward_name, steps=forward_blocks,
        preamble="\n".join(ensure + bookkeeping.forward_start(
            history_schema, m.version, forward_name, m.description, digest)),
        postamble="\n".join(bookkeeping.forward_end(history_schema, m.version)))
    rollback = _ENV.get_template("rollback.sql.j2").render(
        **common, filename=rollback_name, steps=rollback_blocks,
        # With a preflight step, that step marks the version rolling_back once every check passed.
        preamble="\n".join(ensure + ([] if plan.rollback and plan.rollback[0].kind == PREFLIGHT_KIND
                                      else bookkeeping.rollback_start(
                                          history_schema, m.version,
                                          raw_sql=any(s.kind == "raw_sql" for s in plan.rollback)))),
        postamble="\n".join(bookkeeping.rollback_end(history_schema, m.version)))
    _read_back(forward_name, forward, forward_blocks, source_name)
    _read_back(rollback_name, rollback, rollback_blocks, source_name)
    files = {forward_name: forward, rollback_name: rollback}
    tests_name = test_file_name(m.folder)
    files[tests_name] = render_test_file(
        folder=m.folder, label=f"V{m.version}", name=m.name, version=m.version, source=source_name,
        checksum=digest, expects=plan.expects, history_schema=history_schema, backup_schema=BACKUP_SCHEMA)
    files[CHECKLIST_NAME] = render_checklist(plan, files=list(files), checksum=digest, source=source_name,
                                             history_schema=history_schema, backup_schema=BACKUP_SCHEMA)
    manifest = Manifest(
        version=m.version, name=m.name, description=m.description, source=source_name, checksum=digest,
        destructive=m.destructive, history_schema=history_schema, backup_schema=BACKUP_SCHEMA,
        files={
            "forward": FileEntry(forward_name, _sha(forward)),
            "rollback": FileEntry(rollback_name, _sha(rollback)),
            "tests": FileEntry(tests_name, _sha(files[tests_name])),
            "checklist": FileEntry(CHECKLIST_NAME, _sha(files[CHECKLIST_NAME])),
        },
        steps=tuple(_step_entry(i, s) for i, s in enumerate(plan.forward, 1)),
        rollback_steps=tuple(_step_entry(i, s) for i, s in enumerate(plan.rollback, 1)),
        expects=tuple(to_json(plan.expects)), format=MANIFEST_FORMAT,
        statements={which: index for which, index in (("forward", statement_index_of(forward)),
                                                      ("rollback", statement_index_of(rollback)))
                    if index is not None},
        expands=tuple(op.describe_expansion() for op in m.operations if isinstance(op, Expands) and op.online),
        contracts=tuple(op.version for op in m.operations if isinstance(op, Contract)))
    files[MANIFEST_NAME] = manifest.to_json()
    return Bundle(m.folder, files)


def _read_back(name: str, text: str, blocks: list[str], source: str) -> None:
    """Refuse a bundle file that psql and the executor would not run the same way, or whose steps
    the executor would not read back as they were written (SpecError, exit 2, nothing written)."""
    try:
        split_script(text)
    except PsqlScriptError as exc:
        raise SpecError(f"the generated {name} would run differently under psql than under dbdeploy at its line "
                        f"{exc.line}: {exc.reason}", file=source, fix=exc.fix) from None
    try:
        _, steps, _ = parse_steps(text)
    except MarkerError as exc:
        raise SpecError(f"the generated {name} cannot be read back: {exc}", file=source,
                        fix="remove text that reads as a dbdeploy marker comment from the spec's SQL") from None
    if [step.block for step in steps] != blocks:
        raise SpecError(f"the generated {name} does not read back as the steps it was written from", file=source,
                        fix="remove text that reads as a dbdeploy marker comment (-- dbdeploy:…) from the spec's SQL")


def _sha(text: str) -> str:
    digest = hashlib.sha256()
    for start in range(0, len(text), 1 << 20):    # in pieces: a large seed's forward is not encoded twice at once
        digest.update(text[start:start + (1 << 20)].encode("utf-8"))
    return digest.hexdigest()


def _step_entry(number: int, step) -> StepEntry:
    return StepEntry(number, step.kind, "step" if step.transactional else "none", step.lock, step.target or "-",
                     step.summary)
