"""The bundle's step markers: written by the generator, read back by the executor.

A step block is::

    -- dbdeploy:step 3 create_index tx=none lock=SHARE UPDATE EXCLUSIVE target=raw.events
    -- build index events_ts_idx on raw.events concurrently
    <SQL>

psql ignores the comments; the executor uses them to run each step as the generator meant
(in a transaction or in autocommit) and the checksum covers exactly these blocks.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left
from dataclasses import dataclass
from typing import get_args

from dbdeploy.bundle import statement_index
from dbdeploy.bundle.step import Lock, Step
from dbdeploy.sql.psql import LineComment, PsqlScriptError, Statement, scan, split_script

PREAMBLE = "-- dbdeploy:preamble"
BATCH_BEGIN = "-- dbdeploy:batch-begin"
BATCH_END = "-- dbdeploy:batch-end"
# The loop contract of a batch step (README "Batches bounded by time"). The begin marker carries the
# upper bound of the rows per batch (the spec's batch_size): ``-- dbdeploy:batch-begin rows=1000``.
# Before each run of the batch statement the loop sets BATCH_ROWS_SETTING (session level, with
# set_config) to the batch's row count, which the statement reads with current_setting: it starts at
# rows=, and after each batch (measured up to its commit) halves (min 1) when the batch took longer
# than the target and doubles (at most rows=) when it took less than a quarter of it
# (:func:`next_batch_rows`). The target is the environment's ``batch_time`` under the executor; the
# bundle's PL/pgSQL loops read BATCH_TIME_SETTING (an interval such as ``200ms``), DEFAULT_BATCH_TIME
# when it is unset (psql); ``0`` keeps every batch at rows=.
BATCH_ROWS_SETTING = "dbdeploy.batch_rows"
BATCH_TIME_SETTING = "dbdeploy.batch_time"
DEFAULT_BATCH_TIME = "50ms"
_BATCH_BEGIN_ROWS = re.compile(re.escape(BATCH_BEGIN) + r"(?: rows=(?P<rows>[1-9]\d{0,8}))?")
POSTAMBLE = "-- dbdeploy:postamble"
# Step kinds whose DO block loops over one batch statement between the batch markers (the executor
# runs that statement itself, once per batch, in autocommit).
BATCH_KINDS = frozenset({"backfill", "copy_column", "restore_column_values", "restore_backfill_values"})
_MARKER = re.compile(
    r"^-- dbdeploy:step (?P<n>\d+) (?P<kind>[a-z_]+) tx=(?P<tx>step|none) lock=(?P<lock>[A-Z ]+?) "
    r"target=(?P<target>\S+)$", re.MULTILINE)


def render_step(number: int, step: Step) -> str:
    tx = "step" if step.transactional else "none"
    lines = [
        f"-- dbdeploy:step {number} {step.kind} tx={tx} lock={step.lock} target={step.target or '-'}",
        f"-- {step.summary}",
    ]
    if step.transactional:
        lines += ["BEGIN;", step.sql, "COMMIT;"]
    else:
        lines.append(step.sql)
    return "\n".join(lines)


def checksum(step_blocks: list[str]) -> str:
    """sha256 of the step blocks: what the migration does, independent of header comments."""
    digest = hashlib.sha256()
    for i, block in enumerate(step_blocks):   # = sha256 of the blocks joined by blank lines, without the join's copy
        if i:
            digest.update(b"\n\n")
        digest.update(block.encode("utf-8"))
    return digest.hexdigest()


class MarkerError(ValueError):
    """A bundle file whose markers or statements cannot be read back as the generator wrote them.

    ``line`` is the 1-based line of the problem in the file (None when it is the whole file),
    ``reason`` the message without it, ``fix`` what to change when it is not "regenerate".
    """

    def __init__(self, reason: str, line: int | None = None, fix: str | None = None) -> None:
        self.reason = reason
        self.line = line
        self.fix = fix
        super().__init__(f"line {line}: {reason}" if line is not None else reason)


LOCKS = frozenset(get_args(Lock))
_MARKER_LINE = re.compile(r"^-- dbdeploy:.*$", re.MULTILINE)
_BATCH_LINE = re.compile(r"^[ \t]*(-- dbdeploy:batch-begin\b.*)$", re.MULTILINE)


def _marker_problem(line: str) -> str | None:
    """Why a ``-- dbdeploy:`` line at the start of a line is not a marker this version writes, or None."""
    if line in (PREAMBLE, POSTAMBLE):
        return None
    match = _MARKER.fullmatch(line)
    if match is None:
        return (f"{line!r} is not a dbdeploy marker this version can read (a step marker is "
                "'-- dbdeploy:step <n> <kind> tx=step|none lock=<LOCK> target=<schema.table or ->')")
    if match["lock"] not in LOCKS:
        return f"{line!r} names the unknown lock {match['lock']!r} (one of: {', '.join(sorted(LOCKS))})"
    return None


def check_marker_lines(text: str) -> None:
    """Check every marker line of a bundle file without lexing it (linear, no pglast): each line that
    starts with ``-- dbdeploy:`` is the preamble or postamble marker or a step marker with every
    field and a known lock, a ``tx=step`` step's lines are ``BEGIN;`` … ``COMMIT;``, a batch step has one
    batch-begin/batch-end pair, and each batch-begin marker has a well-formed ``rows=`` if it has one.
    Raises :class:`MarkerError` with the line. A line inside a string literal of a RawSQL can look like
    a marker too (generate accepts it): a problem found here is only confirmed by :func:`parse_steps`.
    """
    markers = list(_MARKER_LINE.finditer(text))
    for index, found in enumerate(markers):
        problem = _marker_problem(found.group())
        if problem:
            raise MarkerError(problem, _line(text, found.start()))
        match = _MARKER.fullmatch(found.group())
        if match is None:
            continue
        block = text[found.start():markers[index + 1].start() if index + 1 < len(markers) else len(text)]
        lines = block.rstrip("\n").split("\n")
        if match["tx"] == "step" and (len(lines) < 4 or lines[2] != "BEGIN;" or lines[-1] != "COMMIT;"):
            raise MarkerError(f"step {match['n']} is tx=step but is not one BEGIN; … COMMIT; block (the step is "
                              "unterminated or its lines were edited)", _line(text, found.start()))
        if match["kind"] in BATCH_KINDS and match["tx"] == "none":
            stripped = [line.strip() for line in lines]
            begins = sum(line.startswith(BATCH_BEGIN) for line in stripped)
            if begins != 1 or stripped.count(BATCH_END) != 1:
                raise MarkerError(f"batch step {match['n']} does not have one {BATCH_BEGIN!r} … {BATCH_END!r} "
                                  "pair in its DO block", _line(text, found.start()))
    for found in _BATCH_LINE.finditer(text):
        if not _BATCH_BEGIN_ROWS.fullmatch(found.group(1)):
            raise MarkerError(f"{found.group(1)!r}: a batch-begin marker's rows= must be a positive integer",
                              _line(text, found.start(1)))


@dataclass(frozen=True)
class ParsedStep:
    """One step read back from a bundle file: its marker's fields, its block (marker line up to the
    next marker, what the checksum covers), its summary line and its statements as psql sends them."""

    number: int
    kind: str
    transactional: bool
    lock: str
    target: str
    block: str
    summary: str = ""
    statements: tuple[Statement, ...] = ()
    batch: str | None = None
    batch_rows: int | None = None   # the begin marker's rows= (None: a bundle of an older dbdeploy, fixed size)


def _line(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def parse_steps(text: str, index: dict | None = None
                ) -> tuple[tuple[Statement, ...], list[ParsedStep], tuple[Statement, ...]]:
    """Split a bundle file into (preamble statements, steps, postamble statements).

    The file is split exactly as psql splits it: by its statement ``index`` when the manifest has one
    (:mod:`dbdeploy.bundle.statement_index`, recorded by ``generate`` for exactly these characters: no
    lexer), else with PostgreSQL's lexer (:func:`dbdeploy.sql.psql.split_script`); a marker counts
    only as a ``--`` comment line between statements, never inside a string, dollar quote or comment.
    Raises :class:`MarkerError` for a malformed or misplaced marker, a statement outside the marked
    sections, SQL that psql would run differently (meta-commands, variables, unterminated quotes), or
    an index that does not fit the file.
    """
    batches = None
    if index is not None:
        try:
            items, batches = statement_index.decode(text, index)
        except statement_index.StatementIndexError as exc:
            raise MarkerError(f"{exc} (the manifest's 'statements' entry for this file)") from None
    else:
        try:
            items = split_script(text)
        except PsqlScriptError as exc:
            raise MarkerError(exc.reason, exc.line, exc.fix) from None
    sections: list[tuple[str, re.Match | None, LineComment]] = []
    summaries: dict[int, str] = {}
    for index, item in enumerate(items):
        if isinstance(item, LineComment) and index and isinstance(items[index - 1], LineComment) \
                and item.start == items[index - 1].end + 1 and item.text.startswith("-- "):
            summaries[items[index - 1].start] = item.text[3:]
        if not (isinstance(item, LineComment) and item.at_line_start and item.text.startswith("-- dbdeploy:")):
            continue
        if item.text == PREAMBLE:
            sections.append(("preamble", None, item))
        elif item.text == POSTAMBLE:
            sections.append(("postamble", None, item))
        elif (match := _MARKER.fullmatch(item.text)) and match["lock"] in LOCKS:
            sections.append(("step", match, item))
        else:
            problem = _marker_problem(item.text) or f"{item.text!r} is misplaced"
            raise MarkerError(f"{problem} (a batch marker outside a backfill's DO block, or an edited step marker)",
                              _line(text, item.start))
    kinds = [kind for kind, _, _ in sections]
    if kinds.count("preamble") != 1 or kinds[0] != "preamble":
        raise MarkerError(f"not a dbdeploy bundle: {PREAMBLE!r} must come once, before every step")
    if kinds.count("postamble") != 1 or kinds[-1] != "postamble":
        raise MarkerError(f"not a dbdeploy bundle: {POSTAMBLE!r} must come once, after every step")
    statements = [item for item in items if isinstance(item, Statement)]
    bounds = [comment.start for _, _, comment in sections] + [len(text) + 1]
    early = [s for s in statements if s.start < bounds[0]]
    if early:
        raise MarkerError(f"a statement before {PREAMBLE!r}", _line(text, early[0].start))

    starts = [s.start for s in statements]

    def inside(i: int) -> tuple[Statement, ...]:
        chosen = statements[bisect_left(starts, bounds[i]):bisect_left(starts, bounds[i + 1])]
        return tuple(s for s in chosen if not s.empty)

    steps = []
    for i, (kind, match, comment) in enumerate(sections):
        if kind != "step":
            continue
        block = text[comment.start:bounds[i + 1]].rstrip("\n")
        summary = summaries.get(comment.start, match["kind"])
        own = inside(i)
        transactional = match["tx"] == "step"
        if transactional:
            if len(own) < 2 or own[0].first_words(2) != ("begin",) or own[-1].first_words(2) != ("commit",):
                raise MarkerError(f"step {match['n']} is tx=step but is not one BEGIN; … COMMIT; block",
                                  _line(text, comment.start))
            own = own[1:-1]
        batch, batch_rows = (_batch(text, comment, own, batches) if match["kind"] in BATCH_KINDS
                             and not transactional else (None, None))
        steps.append(ParsedStep(int(match["n"]), match["kind"], transactional, match["lock"], match["target"],
                                block, summary, own, batch, batch_rows))
    return inside(0), steps, inside(len(sections) - 1)


def next_batch_rows(rows: int, took: float, target: float, max_rows: int) -> int:
    """The row count of the next batch after one of ``rows`` rows took ``took`` seconds (up to its
    commit), for a target of ``target`` seconds: half (at least 1) when it took longer than the
    target, double (at most ``max_rows``) when it took less than a quarter of it, else the same;
    ``target`` 0 keeps ``rows``. The bundle's PL/pgSQL loops compute the same
    (:func:`dbdeploy.ops.batches.batch_loop`)."""
    if target > 0 and took > target:
        return max(rows // 2, 1)
    if took < target / 4:
        return min(rows * 2, max_rows)
    return rows


def _batch(text: str, marker: LineComment, statements: tuple[Statement, ...],
           recorded: dict[int, tuple[str, int | None]] | None = None) -> tuple[str, int | None]:
    """The one-batch statement of a backfill step and its most rows per batch: the text between the
    batch markers, which are comment lines of the PL/pgSQL body of the step's DO block (found with the
    lexer, in that body, or as the statement index ``recorded`` them: statement start → (batch, rows)),
    and the begin marker's ``rows=`` (None when it has none: a bundle of an older dbdeploy, whose
    statement has its row count built in)."""
    for statement in statements:
        if recorded is not None:
            if statement.start in recorded:
                return recorded[statement.start]
            continue
        found = _batch_of(statement)
        if found is not None:
            offset, length, rows = found
            return statement.text[offset:offset + length], rows
    raise MarkerError(f"batch step without one {BATCH_BEGIN!r} … {BATCH_END!r} pair (with rows= a positive "
                      "integer, or no rows=) in its DO block", _line(text, marker.start))


def _batch_of(statement: Statement) -> tuple[int, int, int | None] | None:
    """Where the one-batch statement is in a DO statement's text — (offset, length, rows= or None) —
    or None when the statement is not a DO block with one batch-begin … batch-end pair (lexer)."""
    if statement.first_words(1) != ("do",):
        return None
    for token in scan(statement.text):
        quoted = statement.text[token.start:token.end + 1]
        if token.name != "SCONST" or not quoted.startswith("$"):
            continue
        tag = quoted[:quoted.index("$", 1) + 1]
        body = quoted[len(tag):-len(tag)]
        comments = [t for t in scan(body) if t.name == "SQL_COMMENT"
                    and body[body.rfind("\n", 0, t.start) + 1:t.start].strip() == ""]
        begin = [(t, m) for t in comments if (m := _BATCH_BEGIN_ROWS.fullmatch(body[t.start:t.end + 1]))]
        end = [t for t in comments if body[t.start:t.end + 1] == BATCH_END]
        if len(begin) == 1 and len(end) == 1 and begin[0][0].end < end[0].start:
            rows = begin[0][1]["rows"]
            raw = body[begin[0][0].end + 1:end[0].start]
            batch = raw.strip()
            offset = token.start + len(tag) + begin[0][0].end + 1 + (len(raw) - len(raw.lstrip()))
            return offset, len(batch), int(rows) if rows else None
    return None


def statement_index_of(text: str) -> dict[str, str] | None:
    """The statement index ``generate`` records for a bundle file (:mod:`dbdeploy.bundle.statement_index`):
    psql's split by the lexer, with the batch statement of every backfill DO block; None when the file
    cannot be split (generate refuses it before) or the index would not read back exactly."""
    try:
        items = split_script(text)
    except PsqlScriptError:
        return None
    batches = {}
    for item in items:
        if isinstance(item, Statement) and BATCH_BEGIN in item.text and (found := _batch_of(item)) is not None:
            batches[item.start] = found
    return statement_index.encode(text, items, batches)
