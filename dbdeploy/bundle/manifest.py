"""A bundle's ``manifest.json``: one dataclass, written by ``dbdeploy generate``
(:mod:`dbdeploy.render.bundle`) and read back by the executor (:mod:`dbdeploy.executor.bundles`).

The JSON is the dataclass's fields in order (``json.dumps(indent=2, ensure_ascii=False)`` plus a line
break), so the bytes of committed manifests do not change. Reading it back raises
:class:`~dbdeploy.errors.BundleFormatError` naming the file, the field and the fix when the JSON does
not parse or a required field is missing or of the wrong type; fields a bundle of an older dbdeploy
may lack (``destructive``, the schemas, the step lists, ``expects``, the ``statements`` index) get their
defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbdeploy.bundle.schemas import BACKUP_SCHEMA, HISTORY_SCHEMA
from dbdeploy.errors import BundleFormatError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
FIX = "restore the bundle's manifest.json from version control or run `dbdeploy generate`"


def file_names(folder: str, version: str, name: str) -> tuple[str, str]:
    """The forward and rollback SQL file names of a bundle in ``folder`` (``V<version>__<name>``)."""
    return f"{folder}.sql", f"V{version}__rollback_{name}.sql"


@dataclass(frozen=True)
class FileEntry:
    """One file of the bundle: its name in the bundle's folder and the sha256 of its bytes."""

    name: str
    sha256: str


@dataclass(frozen=True)
class StepEntry:
    """A step as the manifest lists it (what the privilege preflight reads without the SQL):
    ``n`` its number, ``tx`` ``step`` or ``none``, ``target`` ``schema.table`` or ``-``."""

    n: int
    kind: str
    tx: str
    lock: str
    target: str
    summary: str

    def get(self, key: str, default: Any = None) -> Any:
        """The field ``key`` (mapping-style, for code that reads a step entry by name)."""
        return getattr(self, key, default)


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``. ``files`` maps ``forward``/``rollback``/``tests``/``checklist`` to their
    :class:`FileEntry` (forward and rollback are required); ``expects`` are the expectation entries
    as written (dicts, see :mod:`dbdeploy.bundle.expectations`)."""

    version: str
    name: str
    checksum: str
    files: dict[str, FileEntry]
    description: str = ""
    source: str = ""
    destructive: bool = False
    history_schema: str = HISTORY_SCHEMA
    backup_schema: str = BACKUP_SCHEMA
    steps: tuple[StepEntry, ...] = ()
    rollback_steps: tuple[StepEntry, ...] = ()
    expects: tuple[dict, ...] = field(default=())
    format: int = MANIFEST_FORMAT
    # ``forward``/``rollback`` → the file's statement index (dbdeploy.bundle.statement_index), written
    # last so the fields above stay on top for a reviewer; empty in a bundle of an older dbdeploy.
    statements: dict[str, dict[str, str]] = field(default_factory=dict)
    # Expand/contract (ops/expansion.py): one line per expansion this version opens (``online=True``
    # operations), and the versions whose expansions it closes (``Contract``). Written only when not
    # empty, so every other manifest keeps its bytes; a manifest without them reads as empty.
    expands: tuple[str, ...] = ()
    contracts: tuple[str, ...] = ()

    def statement_index(self, which: str) -> dict[str, str] | None:
        """The statement index of the file ``which`` when it describes the bytes ``files`` names (same
        sha256), else None: the file is then split with the lexer."""
        index = self.statements.get(which)
        entry = self.files.get(which)
        return index if index is not None and entry is not None and index["sha256"] == entry.sha256 else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, keys in the order ``generate`` has always written them."""
        return {
            "format": self.format,
            "version": self.version,
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "checksum": self.checksum,
            "destructive": self.destructive,
            "history_schema": self.history_schema,
            "backup_schema": self.backup_schema,
            "files": {which: {"name": f.name, "sha256": f.sha256} for which, f in self.files.items()},
            "steps": [_step_dict(s) for s in self.steps],
            "rollback_steps": [_step_dict(s) for s in self.rollback_steps],
            "expects": list(self.expects),
            **({"statements": self.statements} if self.statements else {}),
            **({"expands": list(self.expands)} if self.expands else {}),
            **({"contracts": list(self.contracts)} if self.contracts else {}),
        }

    def to_json(self) -> str:
        """The file's text."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Read ``path``. Raises :class:`BundleFormatError` (file, field, fix) when it cannot be read,
        is not JSON, or a field is missing or of the wrong type."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise BundleFormatError(f"cannot be read ({exc.strerror or exc})", file=str(path), fix=FIX) from None
        except ValueError as exc:
            raise BundleFormatError(f"is not JSON ({exc})", file=str(path), fix=FIX) from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, path: str) -> Manifest:
        """The manifest of the parsed JSON ``data`` read from ``path`` (for messages); see :meth:`read`."""
        reader = _Reader(data, path)
        version = reader.get("version", str)
        if not version.isdigit():
            raise BundleFormatError(f"{version!r} is not a version number", file=path, field="version", fix=FIX)
        files = reader.get("files", dict)
        entries = {}
        for which, entry in files.items():
            sub = _Reader(entry, path, f"files.{which}")
            entries[which] = FileEntry(sub.get("name", str), sub.get("sha256", str))
        for which in ("forward", "rollback"):
            if which not in entries:
                raise BundleFormatError("the field is missing", file=path, field=f"files.{which}", fix=FIX)
        return cls(
            version=version, name=reader.get("name", str), checksum=reader.get("checksum", str),
            files=entries, description=reader.get("description", str, ""), source=reader.get("source", str, ""),
            destructive=reader.get("destructive", bool, False),
            history_schema=reader.get("history_schema", str, HISTORY_SCHEMA),
            backup_schema=reader.get("backup_schema", str, BACKUP_SCHEMA),
            steps=reader.steps("steps"), rollback_steps=reader.steps("rollback_steps"),
            expects=tuple(reader.get("expects", list, [])), format=reader.get("format", int, MANIFEST_FORMAT),
            statements=reader.statements(), expands=reader.strings("expands"),
            contracts=reader.strings("contracts"))


def _step_dict(step: StepEntry) -> dict[str, Any]:
    return {"n": step.n, "kind": step.kind, "tx": step.tx, "lock": step.lock, "target": step.target,
            "summary": step.summary}


_MISSING = object()


class _Reader:
    """Typed access to one JSON object of the manifest; errors name the field's dotted path."""

    def __init__(self, data: Any, path: str, prefix: str = "") -> None:
        if not isinstance(data, dict):
            raise BundleFormatError(f"is {type(data).__name__}, not an object", file=path, field=prefix or None,
                                    fix=FIX)
        self.data, self.path, self.prefix = data, path, prefix

    def _field(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def get(self, key: str, kind: type, default: Any = _MISSING) -> Any:
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise BundleFormatError("the field is missing", file=self.path, field=self._field(key), fix=FIX)
            return default
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise BundleFormatError(f"is {type(value).__name__}, not {kind.__name__}", file=self.path,
                                    field=self._field(key), fix=FIX)
        return value

    def steps(self, key: str) -> tuple[StepEntry, ...]:
        found = []
        for i, entry in enumerate(self.get(key, list, [])):
            sub = _Reader(entry, self.path, f"{self._field(key)}[{i}]")
            found.append(StepEntry(sub.get("n", int), sub.get("kind", str), sub.get("tx", str), sub.get("lock", str),
                                   sub.get("target", str), sub.get("summary", str)))
        return tuple(found)

    def strings(self, key: str) -> tuple[str, ...]:
        """An optional list of strings (empty when missing)."""
        values = self.get(key, list, [])
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise BundleFormatError(f"is {type(value).__name__}, not str", file=self.path,
                                        field=f"{self._field(key)}[{i}]", fix=FIX)
        return tuple(values)

    def statements(self) -> dict[str, dict[str, str]]:
        """The ``statements`` object: file (``forward``/``rollback``) → {"sha256", "words", "index": str}."""
        found = {}
        for which, entry in self.get("statements", dict, {}).items():
            sub = _Reader(entry, self.path, f"statements.{which}")
            found[which] = {"sha256": sub.get("sha256", str), "words": sub.get("words", str),
                            "index": sub.get("index", str)}
        return found
