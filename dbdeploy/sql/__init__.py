"""The only place that quotes identifiers and literals and parses SQL from specs.

Everything else builds SQL from :mod:`psycopg.sql` composables returned here, so no SQL is ever
string-formatted from user input.

The names below are loaded from their submodule when first used (PEP 562 module ``__getattr__``):
quoting (:mod:`dbdeploy.sql.quote`, psycopg only) never loads the parser (:mod:`dbdeploy.sql.parse`,
pglast), so the executor, which only quotes, runs without pglast's parser imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_FROM_PARSE = (
    "Expression", "IndexElement", "PartitionBound", "PartitionKey", "SqlParseError", "TrustedText", "TypeName",
    "column_default", "is_probably_volatile", "is_transaction_control", "parse_expression", "parse_index_element",
    "parse_partition_bound", "parse_partition_key", "parse_statements", "parse_type", "statement_needs_autocommit",
)
_FROM_QUOTE = ("SQL", "Composable", "dollar_quote", "dollar_quoted", "ident", "line_comment", "literal",
               "qualified", "regclass", "regclass_of", "render")
_SOURCE = {**dict.fromkeys(_FROM_PARSE, "parse"), **dict.fromkeys(_FROM_QUOTE, "quote")}

__all__ = [*_FROM_PARSE, *_FROM_QUOTE]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and readers only
    from dbdeploy.sql.parse import (  # noqa: F401
        Expression,
        IndexElement,
        PartitionBound,
        PartitionKey,
        SqlParseError,
        TrustedText,
        TypeName,
        column_default,
        is_probably_volatile,
        is_transaction_control,
        parse_expression,
        parse_index_element,
        parse_partition_bound,
        parse_partition_key,
        parse_statements,
        parse_type,
        statement_needs_autocommit,
    )
    from dbdeploy.sql.quote import (  # noqa: F401
        SQL,
        Composable,
        dollar_quote,
        dollar_quoted,
        ident,
        line_comment,
        literal,
        qualified,
        regclass,
        regclass_of,
        render,
    )


def __getattr__(name: str):
    """The public name ``name`` from its submodule (imported on first use); AttributeError otherwise."""
    module = _SOURCE.get(name)
    if module is None:
        raise AttributeError(f"module 'dbdeploy.sql' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"dbdeploy.sql.{module}"), name)
    globals()[name] = value
    return value
