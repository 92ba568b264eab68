"""The executor's side of the trust check (README "Security"): the same ``DO`` block the bundles'
preamble runs (:func:`dbdeploy.bundle.trust.check_block`), run before a command reads or writes
dbdeploy's history or backups, so that nothing planted in those schemas runs as the deploying role.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg

from dbdeploy.bundle.trust import MESSAGE, check_block
from dbdeploy.errors import TrustError


def verify(conn: psycopg.Connection, history_schema: str, backup_schemas: Iterable[str],
           owners: Sequence[str], what: str, *, writing: bool = True) -> None:
    """Raise :class:`TrustError` (exit 3, nothing run) when an object in ``history_schema`` or a
    backup schema is not trusted; the message names every object and what is wrong with it.
    ``writing=False`` (status, verify, dry runs: they only SELECT the history) checks only what
    makes a SELECT run code: a view or other non-table relation, a rule, row-level security.

    Reads the catalog only (and ``<backup>.dropped_tables`` once it is proven trusted); runs under
    ``search_path = pg_catalog, pg_temp`` whatever the session had.
    """
    for backup in dict.fromkeys(backup_schemas):
        try:
            with conn.transaction():
                conn.execute("SET LOCAL search_path = pg_catalog, pg_temp")
                conn.execute(check_block(history_schema, backup, owners, writing))
        except psycopg.errors.RaiseException as exc:
            diag = exc.diag
            text = diag.message_primary or ""
            if not text.startswith(MESSAGE):
                raise
            problems = text[len(MESSAGE) + 2:].split("; ")
            raise TrustError(f"refusing to {what}: objects in dbdeploy's schemas that another role could use "
                             "to run code as the deploying role; nothing was run:\n  - "
                             + "\n  - ".join(problems) + f"\n{diag.message_hint}") from None
