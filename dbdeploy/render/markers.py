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
from typing import TYPE_CHECKING

from dbdeploy.sql.psql import LineComment, PsqlScriptError, Statement, scan, split_script

if TYPE_CHECKING:  # the executor reads markers without importing the spec machinery
    from dbdeploy.ops.base import Step

PREAMBLE = "-- dbdeploy:preamble"
BATCH_BEGIN = "-- dbdeploy:batch-begin"
BATCH_END = "-- dbdeploy:batch-end"
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
    """A bundle file whose markers or statements cannot be read back as the generator wrote them."""


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


def _line(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def parse_steps(text: str) -> tuple[tuple[Statement, ...], list[ParsedStep], tuple[Statement, ...]]:
    """Split a bundle file into (preamble statements, steps, postamble statements).

    The file is split with PostgreSQL's lexer exactly as psql splits it
    (:func:`dbdeploy.sql.psql.split_script`); a marker counts only as a ``--`` comment line between
    statements, never inside a string, dollar quote or comment. Raises :class:`MarkerError` for a
    malformed or misplaced marker, a statement outside the marked sections, or SQL that psql
    would run differently (meta-commands, variables, unterminated quotes).
    """
    try:
        items = split_script(text)
    except PsqlScriptError as exc:
        raise MarkerError(f"{exc}; {exc.fix}") from None
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
        elif match := _MARKER.fullmatch(item.text):
            sections.append(("step", match, item))
        else:
            raise MarkerError(f"line {_line(text, item.start)}: {item.text!r} is not a dbdeploy marker this version "
                              "can read (a batch marker outside a backfill's DO block, or an edited step marker)")
    kinds = [kind for kind, _, _ in sections]
    if kinds.count("preamble") != 1 or kinds[0] != "preamble":
        raise MarkerError(f"not a dbdeploy bundle: {PREAMBLE!r} must come once, before every step")
    if kinds.count("postamble") != 1 or kinds[-1] != "postamble":
        raise MarkerError(f"not a dbdeploy bundle: {POSTAMBLE!r} must come once, after every step")
    statements = [item for item in items if isinstance(item, Statement)]
    bounds = [comment.start for _, _, comment in sections] + [len(text) + 1]
    early = [s for s in statements if s.start < bounds[0]]
    if early:
        raise MarkerError(f"line {_line(text, early[0].start)}: a statement before {PREAMBLE!r}")

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
            if len(own) < 2 or own[0].words != ("begin",) or own[-1].words != ("commit",):
                raise MarkerError(f"line {_line(text, comment.start)}: step {match['n']} is tx=step but is not "
                                  "one BEGIN; … COMMIT; block")
            own = own[1:-1]
        batch = _batch(text, comment, own) if match["kind"] in BATCH_KINDS and not transactional else None
        steps.append(ParsedStep(int(match["n"]), match["kind"], transactional, match["lock"], match["target"],
                                block, summary, own, batch))
    return inside(0), steps, inside(len(sections) - 1)


def _batch(text: str, marker: LineComment, statements: tuple[Statement, ...]) -> str:
    """The one-batch statement of a backfill step: the text between the batch markers, which are
    comment lines of the PL/pgSQL body of the step's DO block (found with the lexer, in that body)."""
    for statement in statements:
        if statement.words[:1] != ("do",):
            continue
        for token in scan(statement.text):
            quoted = statement.text[token.start:token.end + 1]
            if token.name != "SCONST" or not quoted.startswith("$"):
                continue
            tag = quoted[:quoted.index("$", 1) + 1]
            body = quoted[len(tag):-len(tag)]
            comments = [t for t in scan(body) if t.name == "SQL_COMMENT"
                        and body[body.rfind("\n", 0, t.start) + 1:t.start].strip() == ""]
            begin = [t for t in comments if body[t.start:t.end + 1] == BATCH_BEGIN]
            end = [t for t in comments if body[t.start:t.end + 1] == BATCH_END]
            if len(begin) == 1 and len(end) == 1 and begin[0].end < end[0].start:
                return body[begin[0].end + 1:end[0].start].strip()
    raise MarkerError(f"line {_line(text, marker.start)}: batch step without one {BATCH_BEGIN!r} … "
                      f"{BATCH_END!r} pair in its DO block")
