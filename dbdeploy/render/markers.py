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
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the executor reads markers without importing the spec machinery
    from dbdeploy.ops.base import Step

PREAMBLE = "-- dbdeploy:preamble"
BATCH_BEGIN = "-- dbdeploy:batch-begin"
BATCH_END = "-- dbdeploy:batch-end"
POSTAMBLE = "-- dbdeploy:postamble"
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


@dataclass(frozen=True)
class ParsedStep:
    number: int
    kind: str
    transactional: bool
    lock: str
    target: str
    block: str


def parse_steps(text: str) -> tuple[str, list[ParsedStep], str]:
    """Split a bundle file into (preamble, steps, postamble) as written by the generator."""
    head, sep, rest = text.partition(PREAMBLE + "\n")
    if not sep:
        raise ValueError("not a dbdeploy bundle: no preamble marker")
    body, sep, postamble = rest.partition(POSTAMBLE + "\n")
    if not sep:
        raise ValueError("not a dbdeploy bundle: no postamble marker")
    matches = list(_MARKER.finditer(body))
    preamble = body[: matches[0].start()] if matches else body
    steps = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
        steps.append(ParsedStep(int(match["n"]), match["kind"], match["tx"] == "step", match["lock"],
                                match["target"], body[match.start():end].rstrip("\n")))
    return preamble.strip("\n"), steps, postamble.strip("\n")
