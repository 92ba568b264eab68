"""PL/pgSQL and statement-list building blocks: ``DO`` blocks, ``IF … THEN``, statements one per line.

Shared by the operations and by the bundle's bookkeeping; everything is composed with
:mod:`psycopg.sql`, and bodies are indented only between tokens so literals keep their bytes.
"""

from __future__ import annotations

from psycopg import sql

from dbdeploy.sql.psql import indent
from dbdeploy.sql.quote import dollar_quote, render

S = sql.SQL


def do_block(body: sql.Composable, declare: list[str | sql.Composable] | None = None, *,
             use_column: bool = False) -> str:
    """An anonymous PL/pgSQL block (as text); the dollar-quote tag never occurs in the body.

    ``body`` is a Composable (TypeError for a ``str``). ``declare`` lists the block's variables, one
    declaration each without the ``;``: a literal such as ``"v_n bigint"``, or a Composable when part
    of it is computed (``S("v_n bigint := {}").format(literal(n))``; tests/test_trusted_sql.py refuses
    an f-string there).

    The body is indented only between tokens (:func:`dbdeploy.sql.psql.indent`): a literal in it
    that spans lines keeps every byte. ``use_column``: the block starts with ``#variable_conflict
    use_column`` (PL/pgSQL docs, "Variable Substitution"), so a name in its SQL statements that is
    both a column and a variable of the block means the column — as it does when the statement runs
    on its own (a batch statement the executor runs between the batch markers)."""
    if isinstance(body, str):
        raise TypeError("do_block() takes a psycopg Composable body, not a str")
    text = render(body)
    lines = ["#variable_conflict use_column"] if use_column else []
    if declare:
        lines.append("DECLARE")
        lines.extend(f"    {d if isinstance(d, str) else render(d)};" for d in declare)
    lines.append("BEGIN")
    lines.append(_indent(text.rstrip()))
    lines.append("END")
    return "DO " + dollar_quote("\n".join(lines)) + ";"


def _indent(text: str, by: str = "    ") -> str:
    """``text`` indented by ``by`` only where a line starts outside every token (literals, dollar
    quotes, quoted identifiers and comments keep their bytes; see :func:`dbdeploy.sql.psql.indent`)."""
    return indent(text, by)


def indented(composable: sql.Composable, by: str = "    ", *, first_line: bool = True) -> sql.SQL:
    """``composable`` rendered and indented by ``by`` only between tokens (:func:`_indent`), as SQL;
    ``first_line=False`` leaves the first line where it is (the template indents it).

    The one place where rendered SQL becomes SQL again: its input is a Composable (already trusted
    SQL), never a ``str``; a text-only change of whitespace outside tokens keeps it trusted. Use it
    as a ``format()`` argument (braces in it are not placeholders)."""
    if not isinstance(composable, sql.Composable):
        raise TypeError(f"indented() takes a psycopg Composable, not {type(composable).__name__}")
    text = _indent(render(composable), by)
    return sql.SQL(text if first_line else text.lstrip())


def do_block_sql(body: sql.Composable, declare: list[str | sql.Composable] | None = None, *,
                 use_column: bool = False) -> sql.SQL:
    """:func:`do_block` as SQL, to compose into a larger statement list. ``body`` must be a
    Composable (raises TypeError for a ``str``)."""
    if not isinstance(body, sql.Composable):
        raise TypeError(f"do_block_sql() takes a psycopg Composable body, not {type(body).__name__}")
    return sql.SQL(do_block(body, declare, use_column=use_column))


def block(*statements: sql.Composable | None) -> sql.Composable:
    """Statements joined one per line; ``None`` entries are skipped. Raises TypeError for a ``str``
    (text becomes SQL only as a literal ``sql.SQL("…")`` or through :func:`indented`)."""
    parts = [s for s in statements if s is not None]
    for part in parts:
        if not isinstance(part, sql.Composable):
            raise TypeError(f"block() takes psycopg Composables, not {type(part).__name__}: {part!r:.80}")
    return S("\n").join(parts)


def if_then(condition: sql.Composable, *then: sql.Composable | None,
            otherwise: list[sql.Composable | None] | None = None) -> sql.Composable:
    """``IF condition THEN … [ELSE …] END IF;``; the branches are indented only between tokens."""
    parts = [S("IF {cond} THEN\n{body}").format(cond=condition, body=indented(block(*then)))]
    if otherwise:
        parts.append(S("\nELSE\n{}").format(indented(block(*otherwise))))
    parts.append(S("\nEND IF;"))
    return sql.Composed(parts)
