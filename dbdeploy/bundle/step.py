"""A step of a bundle and the table-level lock it takes: the unit the generator writes and the
executor runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

Lock = Literal[
    "NONE", "ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE",
    "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE",
]


@dataclass(frozen=True)
class Step:
    """One unit the bundle runs: a comment-marked block of SQL.

    ``transactional`` steps are wrapped in BEGIN/COMMIT; the others contain statements that
    PostgreSQL refuses inside a transaction (CONCURRENTLY, DO blocks that COMMIT per batch)
    and run statement by statement in autocommit.

    ``lock`` is the strongest table-level lock any statement of the step takes on an application
    table or index (PostgreSQL docs, 13.3.1 "Table-level Locks", and the lock each ALTER TABLE
    form takes, listed on the ALTER TABLE page: e.g. ``VALIDATE CONSTRAINT`` SHARE UPDATE
    EXCLUSIVE, ``ADD FOREIGN KEY … NOT VALID`` SHARE ROW EXCLUSIVE on both tables, ``CREATE INDEX
    CONCURRENTLY`` SHARE UPDATE EXCLUSIVE, most other forms and DROP ACCESS EXCLUSIVE). It is the
    marker's and the checklist's lock and decides the executor's lock_timeout (runner.py
    ``NON_BLOCKING_LOCKS``), so it must never be weaker than what the statements take:
    tests/test_step_locks.py reads ``pg_locks`` for every golden and example step.
    """

    kind: str
    target: str
    lock: Lock
    transactional: bool
    sql: str
    summary: str
    # How the step's duration grows (e.g. "constant (catalog only)", "proportional to rows, …"): the
    # deployment checklist shows it beside the step. Not part of the step's identity or its SQL.
    scales: str = field(default="", compare=False)


def scaled(steps: Sequence[Step], *texts: str) -> list[Step]:
    """``steps`` with how each one's duration scales: the i-th text for the i-th step, the last text for
    every step after it (``scaled([a, b, c], "constant", "proportional")`` gives b and c "proportional")."""
    if not texts:
        raise ValueError("scaled() needs at least one text")
    return [replace(step, scales=texts[min(i, len(texts) - 1)]) for i, step in enumerate(steps)]
