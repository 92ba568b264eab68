"""Quoting built on :mod:`psycopg.sql`, rendered without a database connection.

Generated bundles must be byte-for-byte deterministic and produced offline, so composables are
rendered with ``as_string(None)`` (psycopg's default adaptation, standard-conforming strings).
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

SQL = sql.SQL
Composable = sql.Composable


def ident(*parts: str) -> sql.Identifier:
    """A quoted (possibly dotted) identifier: ``ident("raw", "t")`` → ``"raw"."t"``."""
    return sql.Identifier(*parts)


def qualified(table: str) -> sql.Identifier:
    """A ``schema.name`` string (already validated by the spec layer) as a quoted identifier."""
    schema, _, name = table.partition(".")
    return sql.Identifier(schema, name)


def literal(value: Any) -> sql.Literal:
    """A SQL literal for a Python value (seed rows, names used as data)."""
    return sql.Literal(value)


def regclass(relation: str | sql.Identifier) -> sql.Composed:
    """``pg_catalog.to_regclass('"schema"."name"')``: the relation's oid, or NULL when it is missing.

    ``relation`` is a validated ``schema.name`` string (split at the first dot, as
    :func:`qualified`) or an already quoted :class:`~psycopg.sql.Identifier`; the lookup gets the
    quoted name as a text literal, so case and dots in names cannot change which relation is found.
    The one spelling of a static ``to_regclass`` in generated SQL."""
    name = qualified(relation) if isinstance(relation, str) else relation
    return regclass_of(sql.Literal(render(name)))


def regclass_of(name: sql.Composable) -> sql.Composed:
    """``pg_catalog.to_regclass(<name>)`` for a name computed at run time: ``name`` is a SQL
    expression yielding the quoted ``schema.name`` text (a PL/pgSQL variable, a ``quote_ident(…) ||
    '.' || quote_ident(…)`` concatenation, a column). Static names use :func:`regclass`."""
    return sql.SQL("pg_catalog.to_regclass({})").format(name)


def render(composable: Composable) -> str:
    """Render a composable to text without a connection."""
    return composable.as_string(None)


def line_comment(text: str) -> sql.SQL:
    """``-- text``: a one-line SQL comment. Line breaks (``\\n``, ``\\r``, where PostgreSQL's and psql's
    lexers end a ``--`` comment) become spaces, so nothing in ``text`` can leave the comment."""
    return sql.SQL("-- " + text.replace("\n", " ").replace("\r", " "))


def dollar_quoted(body: Composable, tag: str = "dbdeploy") -> sql.SQL:
    """``body`` (a Composable, e.g. a PL/pgSQL block) rendered inside a dollar quote whose tag does
    not occur in it (:func:`dollar_quote`), as SQL. Raises TypeError for a ``str``."""
    if not isinstance(body, Composable):
        raise TypeError(f"dollar_quoted() takes a psycopg Composable, not {type(body).__name__}")
    return sql.SQL(dollar_quote(render(body), tag))


def dollar_quote(body: str, tag: str = "dbdeploy") -> str:
    """Wrap a PL/pgSQL body in a dollar quote whose tag does not occur in the body.

    A spec value containing ``$dbdeploy$`` must not be able to end the block early.
    """
    candidate = tag
    counter = 0
    while f"${candidate}$" in body:
        counter += 1
        candidate = f"{tag}_{counter}"
    return f"${candidate}$\n{body}\n${candidate}$"
