"""dbdeploy's benchmark suite: ``python -m benchmarks [--rows N] [--dsn DSN] [--rounds R] [--out DIR] [--quick]``.

Five benchmarks against a real PostgreSQL (see BENCHMARKS.md and issue 6): online stall under a
writer, lock queue behind a blocker, backfill throughput, apply overhead against ``psql -f``, and
generation against Alembic's offline rendering. Each builds its data once into a template
database, gives every contender its own copy, interleaves contenders over at least 3 rounds (the
--quick smoke run: one) and reports medians and ratios.
"""
