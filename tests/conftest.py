"""Pytest wiring for the real-PostgreSQL harness; the reasoning lives in ``tests/pg.py``.

Fixtures:

* ``pg_pool`` (session)    -- the :class:`ServerPool`; stops what it started at session end.
* ``pg_server`` (session)  -- the primary :class:`PgServer`.
* ``pg_servers`` (session) -- every server (primary first), all started.
* ``fresh_db``             -- a new database on the primary server, dropped afterwards.
* ``fresh_db_each``        -- the same, parametrised over every server (ids "pg15", "pg18"; "pg16" with
  ``DBDEPLOY_TEST_PG16=1``).
* ``db_factory``           -- ``make(server=None) -> TestDatabase`` for tests needing several
  databases (e.g. "migrated" vs "built from spec"); all are dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

# Make ``tests.pg`` / ``tests.catalog`` (and ``dbdeploy``) importable however pytest was
# invoked: plain ``pytest`` does not put the repository root on sys.path, and importing the
# helpers by two module names would give two independent copies of their state.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pytest  # noqa: E402

from tests.pg import PgServer, ServerPool, TestDatabase, temporary_database  # noqa: E402

# Golden bundles contain generated test files: they are data to compare, not tests to run here.
collect_ignore_glob = ["golden/*"]

_POOL_KEY = pytest.StashKey[ServerPool]()
_NO_SERVER = "no-server"


def _pool(config: pytest.Config) -> ServerPool:
    """One pool per pytest process, shared by collection (ids) and fixtures (servers)."""
    pool = config.stash.get(_POOL_KEY, None)
    if pool is None:
        pool = ServerPool()
        config.stash[_POOL_KEY] = pool
    return pool


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The fast form of the large issue matrices: a module that sets ``CI_FAST_FORM = n`` runs every
    n-th of its tests (in collection order, so the same ones on every xdist worker) plus those named
    in ``CI_KEEP``; ``DBDEPLOY_FULL=1`` runs them all (README, "Testing")."""
    _long_modules_first(items)
    if os.environ.get("DBDEPLOY_FULL") == "1":
        return
    seen: dict[object, int] = {}
    kept, dropped = [], []
    for item in items:
        module = getattr(item, "module", None)
        every = getattr(module, "CI_FAST_FORM", 0)
        if not every:
            kept.append(item)
            continue
        position = seen.get(module, 0)
        seen[module] = position + 1
        name = getattr(item, "originalname", item.name)
        (kept if position % every == 0 or name in getattr(module, "CI_KEEP", ()) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


# Modules with tests of a minute or more on a 2-core machine (subprocess pipelines, paced writers,
# property histories). xdist hands tests out in collection order, so these start first instead of
# leaving one worker busy after the others have finished (the tail decided the suite's wall time).
_LONG_MODULES = ("test_benchmarks_smoke", "test_stateful_property", "test_pipeline", "test_least_privilege",
                 "test_generated_tests_states", "test_connection_loss", "test_batch_time")


def _long_modules_first(items: list[pytest.Item]) -> None:
    """Reorder ``items`` in place: the tests of ``_LONG_MODULES`` first, otherwise collection order."""
    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
        return _LONG_MODULES.index(module) if module in _LONG_MODULES else len(_LONG_MODULES)
    items.sort(key=rank)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Safety net: stop embedded servers/containers even if no session fixture ran."""
    pool = config.stash.get(_POOL_KEY, None)
    if pool is not None:
        pool.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``fresh_db_each`` with the server ids, known before any server starts.

    If discovery fails we still generate one placeholder case, so the fixture reports the
    real error on that test instead of the whole collection aborting (or the test silently
    vanishing behind an empty parameter set).
    """
    if "fresh_db_each" not in metafunc.fixturenames:
        return
    try:
        names = _pool(metafunc.config).names()
    except Exception:
        names = [_NO_SERVER]
    # A module whose matrix is large and whose SQL does not depend on the server's version (the
    # round trips in test_ops_roundtrip and test_psql_parity do, and always run on both) may run
    # on the primary server only in the default suite; DBDEPLOY_FULL=1 runs it on every server.
    if getattr(metafunc.module, "PRIMARY_SERVER_ONLY_UNLESS_FULL", False) and os.environ.get("DBDEPLOY_FULL") != "1":
        names = names[:1]
    metafunc.parametrize("fresh_db_each", names, ids=names, indirect=True)


@pytest.fixture(scope="session")
def pg_pool(pytestconfig: pytest.Config) -> Iterator[ServerPool]:
    """The session's server pool; embedded servers start lazily and stop at the end."""
    pool = _pool(pytestconfig)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def pg_server(pg_pool: ServerPool) -> PgServer:
    """The primary server (DBDEPLOY_TEST_DSN, local :5432, Docker, or the embedded PostgreSQL 18)."""
    return pg_pool.primary()


@pytest.fixture(scope="session")
def pg_servers(pg_pool: ServerPool) -> list[PgServer]:
    """Every server the suite runs on, started; primary first."""
    return pg_pool.all()


@pytest.fixture
def fresh_db(pg_server: PgServer) -> Iterator[TestDatabase]:
    """An empty database (from template0) on the primary server, force-dropped afterwards."""
    with temporary_database(pg_server) as db:
        yield db


@pytest.fixture
def fresh_db_each(request: pytest.FixtureRequest, pg_pool: ServerPool) -> Iterator[TestDatabase]:
    """Like ``fresh_db`` but once per server, for behaviour that must hold on PG15 and PG18."""
    name = getattr(request, "param", _NO_SERVER)
    # The placeholder id means discovery failed: primary() re-raises that error here.
    server = pg_pool.primary() if name == _NO_SERVER else pg_pool.get(name)
    with temporary_database(server) as db:
        yield db


@pytest.fixture
def db_factory(pg_server: PgServer) -> Iterator[Callable[..., TestDatabase]]:
    """``make(server=None)`` creates extra fresh databases; all are dropped at teardown."""
    with contextlib.ExitStack() as stack:

        def make(server: PgServer | None = None) -> TestDatabase:
            return stack.enter_context(temporary_database(server or pg_server))

        yield make
