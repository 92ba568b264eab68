"""Read bundles back from ``generated/``: manifest, files, and the steps the markers describe.

The executor runs exactly the reviewed SQL: each step's statements are split out of the
bundle file the way psql splits it and sent verbatim — comments inside a statement included, COPY
data as psql sends it — never re-generated. The split is the manifest's statement index
(:mod:`dbdeploy.bundle.statement_index`, recorded by ``generate`` with PostgreSQL's lexer for exactly
the bytes whose sha256 the manifest holds), so running a bundle loads no pglast; a bundle without
the index (an older dbdeploy) or whose file was edited is split with the lexer (:mod:`dbdeploy.sql.psql`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from dbdeploy.bundle.manifest import MANIFEST_NAME, Manifest
from dbdeploy.bundle.markers import MarkerError, ParsedStep, check_marker_lines, checksum, parse_steps
from dbdeploy.errors import BundleFormatError, IntegrityError
from dbdeploy.sql.psql import Statement


class ScriptStatement(str):
    """A statement exactly as psql sends it (a ``str``), with the COPY data psql sends after it.

    ``copy_data`` is the data of ``COPY … FROM STDIN`` (the lines after the statement up to the
    ``\\.`` line); ``copy_out`` is True for ``COPY … TO STDOUT`` (psql prints its rows); ``words``
    are its unquoted words in lower case, as the lexer found them (never text inside a literal).
    """

    copy_data: str | None = None
    copy_out: bool = False
    _source: Statement | None = None

    @property
    def words(self) -> tuple[str, ...]:
        """Lexed when first asked (a large RawSQL's statements are many; most are never asked)."""
        return self._source.words if self._source is not None else ()

    def first_words(self, n: int) -> tuple[str, ...]:
        """``words[:n]``, from the statement index when it recorded them (no lexer)."""
        return self._source.first_words(n) if self._source is not None else ()

    @property
    def builds_index_concurrently(self) -> bool:
        """True if its words hold ``concurrently`` and ``index`` (from the statement index when recorded)."""
        return self._source.builds_index_concurrently if self._source is not None else False

    @classmethod
    def of(cls, statement: Statement) -> ScriptStatement:
        made = cls(statement.text)
        made.copy_data = statement.copy_data
        made.copy_out = statement.copy_out
        made._source = statement
        return made


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
    batch_rows: int | None = None  # its most rows per batch (the marker's rows=; None: older bundle, fixed)

    @property
    def text(self) -> str:
        return "\n".join(self.statements)


@dataclass(frozen=True)
class Script:
    preamble: tuple[str, ...]
    steps: tuple[ExecStep, ...]
    postamble: tuple[str, ...]
    checksum: str


def _exec_step(step: ParsedStep) -> ExecStep:
    return ExecStep(step.number, step.kind, step.transactional, step.lock, step.target, step.summary,
                    tuple(ScriptStatement.of(s) for s in step.statements), step.batch, step.batch_rows)


def parse_script(text: str, index: dict | None = None) -> Script:
    """Read a bundle file: the statements psql would send, grouped by the step markers; split by its
    statement ``index`` (the manifest's, for exactly this text) when given, else with the lexer.

    Raises :class:`MarkerError` (a ValueError) when the markers or the SQL cannot be read back.
    """
    preamble, steps, postamble = parse_steps(text, index)
    return Script(tuple(ScriptStatement.of(s) for s in preamble), tuple(_exec_step(s) for s in steps),
                  tuple(ScriptStatement.of(s) for s in postamble), checksum([s.block for s in steps]))


@dataclass(frozen=True)
class BundleOnDisk:
    """A bundle folder in ``generated/`` and its manifest (:class:`~dbdeploy.bundle.manifest.Manifest`)."""

    folder: Path
    info: Manifest

    @cached_property
    def manifest(self) -> dict:
        """The manifest as its JSON object (for code that reads entries by key, e.g. ``expects``)."""
        return self.info.to_dict()

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def label(self) -> str:
        return f"V{self.version}"

    @property
    def checksum(self) -> str:
        return self.info.checksum

    @property
    def destructive(self) -> bool:
        return self.info.destructive

    def path(self, which: str) -> Path:
        return self.folder / self.info.files[which].name

    def _script(self, which: str) -> Script:
        text, index = self._text_and_index(which)
        try:
            return parse_script(text, index)
        except MarkerError as exc:
            raise _format_error(self.path(which), exc) from None

    def _text_and_index(self, which: str) -> tuple[str, dict | None]:
        """The file's text and its statement index: the manifest's when the file has the manifest's
        sha256 (the index describes exactly those characters), else None (split with the lexer)."""
        data = self.generated_bytes(which)
        if data is None:
            return self.path(which).read_bytes().decode("utf-8", errors="replace"), None
        return data.decode("utf-8", errors="replace"), self.info.statement_index(which)

    def check_markers(self) -> None:
        """Raise :class:`BundleFormatError` (file, line, fix) for a malformed marker line in a file
        that still has its manifest sha256 (an edited one is reported by :meth:`problems`). Reads the
        lines first, without the lexer (status and verify then need no pglast); only when a line looks
        wrong is the file split with the lexer (:func:`parse_steps`), which decides: a marker-like line
        inside a string literal is not an error."""
        for which in ("forward", "rollback"):
            if which not in self.info.files or not self.path(which).is_file():
                continue
            data = self.generated_bytes(which)
            if data is None:
                continue
            text = data.decode("utf-8", errors="replace")
            try:
                check_marker_lines(text)
            except MarkerError:
                # A line that reads as a marker may be inside a string literal of a RawSQL (generate
                # accepts that): only the split can tell (the statement index, else the lexer), and
                # its error is the one to report.
                try:
                    parse_steps(text, self.info.statement_index(which))
                except MarkerError as exc:
                    raise _format_error(self.path(which), exc) from None

    @cached_property
    def forward(self) -> Script:
        return self._script("forward")

    @cached_property
    def rollback(self) -> Script:
        return self._script("rollback")

    def generated_bytes(self, which: str) -> bytes | None:
        """The file's bytes as ``generate`` wrote them (manifest sha256), or None if they differ.

        A checkout that converted line endings to CRLF (git ``core.autocrlf``, an editor) changes
        nothing dbdeploy runs: when the file with its CRLF turned back into LF has the manifest's
        sha256, those restored bytes are the generated file. Raises OSError if it cannot be read.
        """
        data = self.path(which).read_bytes()
        expected = self.info.files[which].sha256
        if hashlib.sha256(data).hexdigest() == expected:
            return data
        if b"\r\n" in data:
            restored = data.replace(b"\r\n", b"\n")
            if hashlib.sha256(restored).hexdigest() == expected:
                return restored
        return None

    def text(self, which: str) -> str:
        """The file's text as generated (see :meth:`generated_bytes`), else as it is on disk."""
        data = self.generated_bytes(which)
        return (data if data is not None else self.path(which).read_bytes()).decode("utf-8", errors="replace")

    def problems(self) -> list[str]:
        """Edits made to the bundle after it was generated (line-ending conversions alone are not edits)."""
        found = []
        for which in self.info.files:
            path = self.path(which)
            if not path.is_file():
                found.append(f"{path} is missing")
                continue
            if self.generated_bytes(which) is not None:
                continue
            if b"\r" in path.read_bytes():
                found.append(f"{path} was edited after it was generated (sha256 differs from manifest.json, also "
                             "with its CRLF line endings turned back into LF): restore generated/ from version "
                             "control with line endings kept as generated (generated/.gitattributes, written by "
                             "`dbdeploy generate`, says `* -text`: delete generated/ and run "
                             "`git checkout -- generated`) or run `dbdeploy generate`")
            else:
                found.append(f"{path} was edited after it was generated (sha256 differs from manifest.json)")
        return found

    def steps_problem(self) -> str | None:
        """Checked when the bundle is about to run (it needs the SQL parsed anyway)."""
        if self.forward.checksum != self.checksum:
            return f"{self.path('forward')}: its steps do not match the manifest checksum"
        return None


def _format_error(path: Path, exc: MarkerError) -> BundleFormatError:
    fix = "restore the file from version control or run `dbdeploy generate` (never edit generated files by hand)"
    if exc.fix:
        fix = f"{exc.fix}; or {fix}"
    return BundleFormatError(f"cannot be read as a dbdeploy bundle: {exc.reason}", file=str(path), line=exc.line,
                             fix=fix)


def load_bundles(generated: Path) -> list[BundleOnDisk]:
    """The bundles under ``generated`` by version, each with its manifest read and its files' marker
    lines checked (:meth:`BundleOnDisk.check_markers`). Raises :class:`IntegrityError` when the folder
    is missing, :class:`BundleFormatError` for a manifest or marker line that cannot be read."""
    generated = Path(generated)
    if not generated.is_dir():
        raise IntegrityError(f"no bundles: {generated} does not exist (run `dbdeploy generate`)")
    bundles = []
    for folder in sorted(generated.iterdir()):
        if not (folder.is_dir() and folder.name.startswith("V") and "__" in folder.name):
            continue
        manifest = Manifest.read(folder / MANIFEST_NAME)
        bundle = BundleOnDisk(folder, manifest)
        bundle.check_markers()
        bundles.append(bundle)
    return sorted(bundles, key=lambda b: int(b.version))
