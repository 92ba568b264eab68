"""Identifier rules and deterministic derived names.

dbdeploy accepts only lowercase ``snake_case`` ASCII identifiers. They are still always quoted
when emitted, but refusing anything that would *need* quoting rules out look-alike Unicode,
case-folding surprises and SQL smuggled into names, with one clear fix to give the user.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_IDENTIFIER_BYTES = 63
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*\Z")
_VERSION = re.compile(r"[0-9]{1,10}\Z")


def check_identifier(value: object, what: str = "identifier") -> str:
    """Return ``value`` if it is a valid identifier, else raise ValueError with the fix."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__} — fix: give the name as a string")
    if not value:
        raise ValueError(f"{what} is empty — fix: give a lowercase snake_case name")
    if "\x00" in value:
        raise ValueError(f"{what} {value!r} contains a NUL byte — fix: remove the NUL byte (\\x00)")
    if len(value.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise ValueError(
            f"{what} {value!r} is {len(value.encode('utf-8'))} bytes; PostgreSQL truncates names "
            f"over {MAX_IDENTIFIER_BYTES} bytes — fix: use a shorter name (at most {MAX_IDENTIFIER_BYTES} bytes)"
        )
    foreign = next((i for i, char in enumerate(value) if not char.isascii()), None)
    if foreign is not None:
        char = value[foreign]
        raise ValueError(
            f"{what} {value!r} is not a lowercase snake_case ASCII name: it contains U+{ord(char):04X} "
            f"{unicodedata.name(char, '(unnamed)')} at position {foreign + 1} (look-alike and invisible "
            "characters would make different names read the same) — fix: retype the name in plain ASCII")
    if not _IDENTIFIER.match(value):
        raise ValueError(
            f"{what} {value!r} is not a lowercase snake_case ASCII name "
            "(letters a-z, digits, underscore; not starting with a digit) — fix: rename it"
        )
    return value


def check_table_name(value: object, what: str = "table") -> str:
    """Validate ``schema.table`` or ``table`` and return the normalized ``schema.table``."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__} — fix: give it as a string "
                         "like 'schema.table'")
    parts = value.split(".")
    if len(parts) == 1:
        parts = ["public", parts[0]]
    if len(parts) != 2:
        raise ValueError(f"{what} {value!r} is not 'schema.table' (one dot at most) — fix: write it as "
                         "'schema.table', or 'table' for the public schema")
    schema = check_identifier(parts[0], f"{what} schema")
    name = check_identifier(parts[1], f"{what} name")
    return f"{schema}.{name}"


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
