"""A bundle file's statement index: psql's statement boundaries, recorded by ``dbdeploy generate``.

``generate`` splits each bundle SQL file with :func:`dbdeploy.sql.psql.split_script` (PostgreSQL's
lexer, pglast) and records in the manifest (``statements.forward`` / ``statements.rollback``) where
each statement is and what the executor reads of it. The executor checks the file's sha256 against
the manifest first, so the offsets describe exactly those characters, and then slices the file by
them: apply, rollback, verify and ``apply --dry-run`` never load pglast. A manifest without the index
(a bundle of an older dbdeploy) is split with the lexer as before.

One file's entry is ``{"sha256": "<of the file>", "words": "<w0> <w1> …", "index": "<token> …"}``:
the sha256 of the bytes it describes (the executor uses the index only when the manifest's
``files`` entry has that sha256: a manifest edited to match an edited file is split with the
lexer, which names the line of a problem), and one token per statement, in order, positions in
characters of the file's text::

    <gap>.<length>[w<i>[.<j>][+][x]][u<rest>][e][o][c<skip>.<data>.<tail>][b<offset>.<length>.<rows>]

- ``gap``: from the end of the previous statement (0 for the first) to this one's first character;
  ``length``: of the statement's text as psql sends it (through its ``;``);
- ``w``: its first words (``HEAD_WORDS``, indices into ``words``; ``w`` alone: no words), ``+`` when it
  has more, ``x`` when its words hold both ``concurrently`` and ``index``; left out when the same as
  the previous statement's;
- ``u``: not terminated by ``;`` (the end of the file), ``rest`` characters after its text belong to it;
- ``e``: empty (only comments and ``;``); ``o``: ``COPY … TO STDOUT``;
- ``c``: ``COPY … FROM STDIN``: its data starts ``skip`` characters after its text, is ``data``
  characters long, and its ``\\.`` line ends ``tail`` characters after the data;
- ``b``: a backfill's DO block: its one-batch statement starts ``offset`` characters into the text,
  is ``length`` long, with the begin marker's ``rows=`` (empty: none).

The ``--`` comments between statements (step markers and summaries) are found in the gaps, which
hold only whitespace and such comments. :func:`encode` checks that :func:`decode` gives back exactly
the split it was given, or records nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from dbdeploy.sql.psql import LineComment, Statement

_TOKEN = re.compile(
    r"(\d+)\.(\d+)(w(?:\d+(?:\.\d+)*)?\+?x?)?(?:u(\d+))?(e)?(o)?(?:c(\d+)\.(\d+)\.(\d+))?(?:b(\d+)\.(\d+)\.(\d*))?")
_WORD_PART = re.compile(r"w((?:\d+(?:\.\d+)*)?)(\+?)(x?)")
_GAP_COMMENT = re.compile(r"--[^\n\r]*")

Batch = tuple[int, int, "int | None"]   # (offset in the statement's text, length, rows= or None)


class StatementIndexError(ValueError):
    """A statement index that does not describe its file (never from a manifest ``generate`` wrote)."""


def encode(text: str, items: Sequence[Statement | LineComment],
           batches: dict[int, Batch]) -> dict[str, str] | None:
    """The index of ``text`` from its split ``items`` (:func:`~dbdeploy.sql.psql.split_script`) and
    the batch statements of its backfill DO blocks (``batches``: statement start → :data:`Batch`), or
    None when :func:`decode` would not give them back exactly (then the executor lexes the file)."""
    table: dict[str, int] = {}
    facts: dict[int, tuple[tuple[str, ...], bool, bool]] = {}
    tokens = []
    previous_end, previous_words = 0, "w"
    for item in items:
        if not isinstance(item, Statement):
            continue
        token = f"{item.start - previous_end}.{len(item.text)}"
        head, more, concurrent = facts[item.start] = item.head_facts()
        indices = [str(table.setdefault(word, len(table))) for word in head]
        part = "w" + ".".join(indices) + ("+" if more else "") + ("x" if concurrent else "")
        if part != previous_words:
            token += part
            previous_words = part
        text_end = item.start + len(item.text)
        if not item.terminated:
            token += f"u{item.end - text_end}"
        if item.empty:
            token += "e"
        if item.copy_out:
            token += "o"
        if item.copy_data is not None:
            data_start = text.find("\n", text_end) + 1
            data_end = data_start + len(item.copy_data)
            token += f"c{data_start - text_end}.{len(item.copy_data)}.{item.end - data_end}"
        if item.start in batches:
            offset, length, rows = batches[item.start]
            token += f"b{offset}.{length}.{'' if rows is None else rows}"
        tokens.append(token)
        previous_end = item.end
    index = {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "words": " ".join(table),
             "index": " ".join(tokens)}
    try:
        decoded, decoded_batches = decode(text, index)
    except StatementIndexError:
        return None
    expected = list(items)
    if decoded != expected or decoded_batches != {
            start: (text[start + offset:start + offset + length], rows)
            for start, (offset, length, rows) in batches.items()}:
        return None
    for got in decoded:
        if isinstance(got, Statement) and (got.head, got.more_words, got.concurrent_index) != facts[got.start]:
            return None
    return index


def decode(text: str, index: dict) -> tuple[list[Statement | LineComment], dict[int, tuple[str, int | None]]]:
    """The split of ``text`` the ``index`` records: its statements (with their recorded words) and the
    ``--`` comments between them, in order, as :func:`~dbdeploy.sql.psql.split_script` gives them, and
    the batch statements of backfill DO blocks (statement start → (batch text, rows= or None)).
    Raises :class:`StatementIndexError` when the index is malformed or does not fit ``text``."""
    if not isinstance(index, dict) or not isinstance(index.get("words"), str) or not isinstance(
            index.get("index"), str):
        raise StatementIndexError("the statement index is not an object with the strings 'words' and 'index'")
    table = index["words"].split(" ") if index["words"] else []
    items: list[Statement | LineComment] = []
    batches: dict[int, tuple[str, int | None]] = {}
    previous_end = 0
    head: tuple[str, ...] = ()
    more = concurrent = False
    for token in index["index"].split(" ") if index["index"] else []:
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise StatementIndexError(f"the statement index has the malformed entry {token!r}")
        gap, length, part, rest, empty, out, skip, data, tail, b_offset, b_length, rows = match.groups()
        start = previous_end + int(gap)
        text_end = start + int(length)
        if part is not None:
            words, plus, x = _WORD_PART.fullmatch(part).groups()
            try:
                head = tuple(table[int(i)] for i in words.split(".")) if words else ()
            except IndexError:
                raise StatementIndexError(
                    f"the statement index entry {token!r} names a word it does not list") from None
            more, concurrent = plus == "+", x == "x"
        end = text_end
        copy_data = None
        if rest is not None:
            end = text_end + int(rest)
        if skip is not None:
            data_start = text_end + int(skip)
            copy_data = text[data_start:data_start + int(data)]
            end = data_start + int(data) + int(tail)
        if end > len(text) or start < previous_end:
            raise StatementIndexError(f"the statement index entry {token!r} lies outside the file")
        items.extend(_gap_comments(text, previous_end, start))
        items.append(Statement.recorded(text[start:text_end], start, end, terminated=rest is None,
                                        copy_data=copy_data, copy_out=out is not None, empty=empty is not None,
                                        head=head, more_words=more, concurrent_index=concurrent))
        if b_offset is not None:
            batch_start = start + int(b_offset)
            batches[start] = (text[batch_start:batch_start + int(b_length)], int(rows) if rows else None)
        previous_end = end
    items.extend(_gap_comments(text, previous_end, len(text)))
    return items, batches


def _gap_comments(text: str, begin: int, end: int) -> list[LineComment]:
    """The ``--`` comments of ``text[begin:end]``, a stretch between statements (only whitespace and
    such comments: anything else would start a statement)."""
    if text.find("--", begin, end) < 0:
        return []
    return [LineComment(found.group(), found.start(), found.end(),
                        found.start() == 0 or text[found.start() - 1] == "\n")
            for found in _GAP_COMMENT.finditer(text, begin, end)]
