"""PL/pgSQL and statement-list building blocks: ``DO`` blocks, ``IF … THEN``, statements one per line.

Shared by the operations and by the bundle's bookkeeping; everything is composed with
:mod:`psycopg.sql`, and bodies are indented only between tokens so literals keep their bytes.
"""

from __future__ import annotations

from psycopg import sql

from dbdeploy.sql.psql import indent
from dbdeploy.sql.quote import dollar_quote, render

S = sql.SQL


def do_block(body: sql.Composable | str, declare: list[str] | None = None, *, use_column: bool = False) -> str:
    """An anonymous PL/pgSQL block; the dollar-quote tag never occurs in the body.

    The body is indented only between tokens (:func:`dbdeploy.sql.psql.indent`): a literal in it
    that spans lines keeps every byte. ``use_column``: the block starts with ``#variable_conflict
    use_column`` (PL/pgSQL docs, "Variable Substitution"), so a name in its SQL statements that is
    both a column and a variable of the block means the column — as it does when the statement runs
    on its own (a batch statement the executor runs between the batch markers)."""
    text = body if isinstance(body, str) else render(body)
    lines = ["#variable_conflict use_column"] if use_column else []
    if declare:
        lines.append("DECLARE")
        lines.extend(f"    {d};" for d in declare)
    lines.append("BEGIN")
    lines.append(_indent(text.rstrip()))
    lines.append("END")
    return "DO " + dollar_quote("\n".join(lines)) + ";"


def _indent(text: str, by: str = "    ") -> str:
    """``text`` indented by ``by`` only where a line starts outside every token (literals, dollar
    quotes, quoted identifiers and comments keep their bytes; see :func:`dbdeploy.sql.psql.indent`)."""
    return indent(text, by)


def block(*statements: sql.Composable | str) -> sql.Composable:
    """Statements joined one per line."""
    parts = [S(s) if isinstance(s, str) else s for s in statements if s is not None]
    return S("\n").join(parts)


def if_then(condition: sql.Composable, *then: sql.Composable | str,
            otherwise: list[sql.Composable | str] | None = None) -> sql.Composable:
    """``IF condition THEN … [ELSE …] END IF;``; the branches are indented only between tokens."""
    body = render(block(*then))
    text = "IF {cond} THEN\n" + _indent(body).replace("{", "{{").replace("}", "}}")
    if otherwise:
        other = render(block(*otherwise))
        text += "\nELSE\n" + _indent(other).replace("{", "{{").replace("}", "}}")
    text += "\nEND IF;"
    return S(text).format(cond=condition)
