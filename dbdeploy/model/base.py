"""Pydantic plumbing shared by every spec model: strict, frozen, and validated at build time."""

from __future__ import annotations

import os
import sys
from contextvars import ContextVar
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from dbdeploy.model import names
from dbdeploy.sql import (
    Expression,
    IndexElement,
    PartitionBound,
    PartitionKey,
    SqlParseError,
    TypeName,
    parse_expression,
    parse_index_element,
    parse_partition_bound,
    parse_partition_key,
    parse_type,
)


class SpecModel(BaseModel):
    """Base for every DSL model: unknown fields are errors, and models are immutable once built."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, validate_default=True)


# While the loader imports a spec file: that file's path and the (model, line) pairs of the operations
# built so far, so that `dbdeploy check` can name the spec line an error at apply comes from.
_SOURCE: ContextVar[tuple[frozenset[str], list] | None] = ContextVar("dbdeploy_spec_source", default=None)


def record_source(model: object) -> None:
    """Note the line of the spec file (the one the loader is importing) at which ``model`` is built:
    the innermost frame of that file on the stack. Does nothing outside the loader."""
    active = _SOURCE.get()
    if active is None:
        return
    filenames, found = active
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename in filenames:
            found.append((model, frame.f_lineno))
            return
        frame = frame.f_back


def recording_sources(filename: str) -> tuple[list, object]:
    """Start recording the models built by the spec file ``filename`` (as its code objects name it);
    returns the list they are appended to and a token for :func:`stop_recording`."""
    found: list = []
    names = frozenset({filename, os.path.abspath(filename), os.path.realpath(filename)})
    return found, _SOURCE.set((names, found))


def stop_recording(token) -> None:
    _SOURCE.reset(token)


def _shown(value: str) -> str:
    """``value`` for an error message: its repr, cut to 80 characters (a 100 kB expression must not
    fill the terminal)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}… ({len(value):,} characters)"


def _expr(value: str) -> Expression:
    try:
        return parse_expression(value)
    except SqlParseError as exc:
        raise ValueError(f"invalid SQL expression {_shown(value)}: {exc}") from None


def _type(value: str) -> TypeName:
    try:
        return parse_type(value)
    except SqlParseError as exc:
        raise ValueError(f"invalid PostgreSQL type {_shown(value)}: {exc}") from None


def _partition_key(value: str) -> PartitionKey:
    try:
        return parse_partition_key(value)
    except SqlParseError as exc:
        raise ValueError(f"invalid partition key {_shown(value)}: {exc}") from None


def _partition_bound(value: str) -> PartitionBound:
    try:
        return parse_partition_bound(value)
    except SqlParseError as exc:
        raise ValueError(f"invalid partition bound {_shown(value)}: {exc}") from None


def _index_key(value: str) -> str | IndexElement:
    if isinstance(value, str) and value.strip() and (names._IDENTIFIER.match(value) or (
            len(value) > 2 and value[0] == value[-1] == '"' and '"' not in value[1:-1])):
        return names.check_identifier(value, "index column")     # a column, maybe quoted: its exact name
    try:
        return parse_index_element(value)
    except SqlParseError as exc:
        raise ValueError(f"invalid index key {_shown(value)}: {exc}") from None


def _unique_list(values: list[str]) -> list[str]:
    seen = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice — fix: list each column once")
        seen.add(value)
    return values


def _non_empty(values: list) -> list:
    if not values:
        raise ValueError("must not be empty — fix: list at least one column")
    return values


def _free_text(value: str) -> str:
    """Comments and descriptions: any text PostgreSQL can store (no NUL byte)."""
    if "\x00" in value:
        raise ValueError("contains a NUL byte, which PostgreSQL text cannot hold — fix: remove the NUL byte (\\x00)")
    return value


Identifier = Annotated[str, AfterValidator(lambda v: names.check_identifier(v, "name"))]
TableName = Annotated[str, AfterValidator(names.check_table_name)]
# The SQL fragments of a spec keep their parse (dbdeploy.sql.parse): an Expression, TypeName or
# IndexElement is a str holding pglast's canonical text (so it dumps, compares and is written to the
# manifest as that text) that carries the columns it reads and enters SQL only through .sql().
SqlExpression = Annotated[str, AfterValidator(_expr)]
"""A SQL expression from a spec, validated and kept as an :class:`~dbdeploy.sql.Expression`."""
SqlType = Annotated[str, AfterValidator(_type)]
"""A PostgreSQL type name from a spec, kept as a :class:`~dbdeploy.sql.TypeName`."""
PartitionKeySpec = Annotated[str, AfterValidator(_partition_key)]
"""``RANGE (col, …)`` / ``LIST (col)`` / ``HASH (col, …)``, kept as a :class:`~dbdeploy.sql.PartitionKey`."""
PartitionBoundSpec = Annotated[str, AfterValidator(_partition_bound)]
"""``FOR VALUES …`` or ``DEFAULT``, kept as a :class:`~dbdeploy.sql.PartitionBound`."""
IndexKey = Annotated[str, AfterValidator(_index_key)]
"""An index key: a plain column name (a ``str``, rendered quoted) or an
:class:`~dbdeploy.sql.IndexElement` (an expression, or a column with ordering/opclass)."""
ColumnList = Annotated[list[Identifier], AfterValidator(_non_empty), AfterValidator(_unique_list)]
FreeText = Annotated[str, AfterValidator(_free_text)]


def _view_query(value: str):
    from dbdeploy.sql.parse import parse_view_query

    try:
        return parse_view_query(value)
    except SqlParseError as exc:
        raise ValueError(f"invalid view query {_shown(value)}: {exc}") from None


SqlQuery = Annotated[str, AfterValidator(_view_query)]
"""A view's query from a spec (one SELECT, VALUES or WITH … SELECT), kept as a
:class:`~dbdeploy.sql.parse.ViewQuery` (pglast's canonical text, entering SQL only through ``.sql()``)."""
