"""Identifier rules and deterministic derived names.

A name in a spec is either a lowercase ``snake_case`` ASCII identifier, or — for objects that
already exist under a name that needs quoting, such as the ``"AspNetUsers"`` an ORM made — the
exact name in double quotes: ``'"AspNetUsers"'``, ``'public."AspNetUsers"'``. Either way the
value kept in the model is the exact catalog name (``AspNetUsers``, no quotes): every identifier
is emitted through ``psycopg.sql.Identifier`` and every name used as data (catalog lookups,
``to_regclass`` texts) is the exact name, so case survives. Inside quotes dbdeploy still refuses
NUL, double quotes, dots (``schema.table`` is split at the dot), control characters, non-ASCII
(look-alike and invisible characters) and more than 63 bytes. An unquoted name with capitals is
refused with the fix (quote it for the exact-case name, or lowercase it): PostgreSQL would fold
it, so ``AspNetUsers`` unquoted would silently mean ``aspnetusers``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_IDENTIFIER_BYTES = 63
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*\Z")
_MIXED_CASE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VERSION = re.compile(r"[0-9]{1,10}\Z")


def check_identifier(value: object, what: str = "identifier") -> str:
    """Return the exact name ``value`` stands for, else raise ValueError with the fix.

    ``value`` is a lowercase snake_case name (returned as is) or a double-quoted name (returned
    without the quotes; see the module doc for what is refused inside them)."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__} — fix: give the name as a string")
    if not value:
        raise ValueError(f"{what} is empty — fix: give a lowercase snake_case name")
    if "\x00" in value:
        raise ValueError(f"{what} {value!r} contains a NUL byte — fix: remove the NUL byte (\\x00)")
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return _check_quoted(value, what)
    if len(value.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise ValueError(
            f"{what} {value!r} is {len(value.encode('utf-8'))} bytes; PostgreSQL truncates names "
            f"over {MAX_IDENTIFIER_BYTES} bytes — fix: use a shorter name (at most {MAX_IDENTIFIER_BYTES} bytes)"
        )
    _refuse_foreign(value, what)
    if _MIXED_CASE.match(value) and not _IDENTIFIER.match(value):
        raise ValueError(
            f"{what} {value!r} is not a lowercase snake_case ASCII name: unquoted, PostgreSQL folds it to "
            f"{value.lower()!r} — fix: write '\"{value}\"' (in double quotes) for the exact-case name of an "
            f"existing object, or {value.lower()!r}")
    if not _IDENTIFIER.match(value):
        raise ValueError(
            f"{what} {value!r} is not a lowercase snake_case ASCII name "
            "(letters a-z, digits, underscore; not starting with a digit) — fix: rename it"
        )
    return value


def _refuse_foreign(value: str, what: str) -> None:
    foreign = next((i for i, char in enumerate(value) if not char.isascii()), None)
    if foreign is not None:
        char = value[foreign]
        raise ValueError(
            f"{what} {value!r} is not a lowercase snake_case ASCII name: it contains U+{ord(char):04X} "
            f"{unicodedata.name(char, '(unnamed)')} at position {foreign + 1} (look-alike and invisible "
            "characters would make different names read the same) — fix: retype the name in plain ASCII")


def _check_quoted(value: str, what: str) -> str:
    """The exact name inside ``"…"``: printable ASCII without ``"`` or ``.``, 1 to 63 bytes."""
    inner = value[1:-1]
    if not inner:
        raise ValueError(f"{what} {value!r} is an empty quoted name — fix: write the name between the quotes")
    if '"' in inner:
        raise ValueError(f"{what} {value!r} contains a double quote inside the quoted name — fix: rename the "
                         "object without double quotes (dbdeploy does not address such names)")
    if "." in inner:
        raise ValueError(f"{what} {value!r} contains a dot inside the quoted name — fix: write 'schema.\"Name\"' "
                         "with the dot outside the quotes (dbdeploy does not address names containing dots)")
    _refuse_foreign(inner, what)
    if not inner.isprintable():
        raise ValueError(f"{what} {value!r} contains a control character — fix: retype the name in plain ASCII")
    if len(inner.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise ValueError(
            f"{what} {value!r} is {len(inner.encode('utf-8'))} bytes between the quotes; PostgreSQL truncates names "
            f"over {MAX_IDENTIFIER_BYTES} bytes — fix: use a shorter name (at most {MAX_IDENTIFIER_BYTES} bytes)")
    return inner


def needs_quotes(name: str) -> bool:
    """Whether the exact name ``name`` is not a lowercase snake_case identifier (a spec writes it quoted)."""
    return not _IDENTIFIER.match(name)


def spelled(name: str) -> str:
    """The spec spelling of the exact name ``name``: as is, or in double quotes when it needs them
    (for models built from names the specs already resolved, e.g. AddUnique's index)."""
    return f'"{name}"' if needs_quotes(name) else name


def check_table_name(value: object, what: str = "table") -> str:
    """Validate ``schema.table`` or ``table`` and return the normalized ``schema.table``."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__} — fix: give it as a string "
                         "like 'schema.table'")
    parts = _split_dots(value)
    if len(parts) == 1:
        parts = ["public", parts[0]]
    if len(parts) != 2:
        raise ValueError(f"{what} {value!r} is not 'schema.table' (one dot at most) — fix: write it as "
                         "'schema.table', or 'table' for the public schema")
    schema = check_identifier(parts[0], f"{what} schema")
    name = check_identifier(parts[1], f"{what} name")
    return f"{schema}.{name}"


def _split_dots(value: str) -> list[str]:
    """``value`` split at the dots outside double quotes (``public."A.b"`` → ``['public', '"A.b"']``, which
    :func:`check_identifier` then refuses with its own message)."""
    parts, current, quoted = [], [], False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "." and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def check_version(value: object) -> str:
    if not isinstance(value, str) or not _VERSION.match(value):
        raise ValueError(f"version {value!r} must be a string of 1-10 digits such as '001' — fix: give the "
                         "version as a quoted string of digits, e.g. version=\"001\"")
    return value


def split_table(table: str) -> tuple[str, str]:
    schema, _, name = table.partition(".")
    return schema, name


def derived_name(*parts: str, suffix: str = "") -> str:
    """Join parts into a name of at most 63 bytes; when too long, shorten deterministically.

    The shortened form keeps a readable prefix and appends 8 hex digits of the SHA-256 of the
    full name, so two long names that share a prefix still get different, stable names.
    """
    full = "_".join(p for p in parts if p)
    if suffix:
        full = f"{full}_{suffix}"
    if len(full.encode("utf-8")) <= MAX_IDENTIFIER_BYTES:
        return full
    digest = hashlib.sha256(full.encode("utf-8")).hexdigest()[:8]
    tail = f"_{digest}" + (f"_{suffix}" if suffix else "")
    head = full.encode("utf-8")[: MAX_IDENTIFIER_BYTES - len(tail)].decode("utf-8", "ignore")
    return head.rstrip("_") + tail


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
