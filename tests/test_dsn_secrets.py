"""Passwords never printed (issue 10, item 7).

The real CLI runs with DSNs whose password libpq misreads or cannot parse (an unencoded '@' in a
URI, an unquoted space in key/value form), passwords with '***' and regex characters, a password
in a URI query parameter and a percent-encoded one — against an unreachable port and against a
real server with a role that has a password — and the password's bytes (and every fragment of
them) must appear in neither stdout nor stderr. A password given with --dsn gets one warning.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from dbdeploy.executor.connection import display_dsn, dsn_problem, redact, secrets_of
from tests.executor_support import make_project

# Fast form in the default suite: every 3rd test plus CI_KEEP (the inputs);
# DBDEPLOY_FULL=1 runs every test (tests/conftest.py, README "Testing").
CI_FAST_FORM = 3
CI_KEEP = (
    "test_display_and_redact_never_show_the_password",
)

UNREACHABLE = "127.0.0.1:9"   # discard port: nothing listens on loopback

# (DSN, the texts that must never be printed, whether the DSN parses cleanly)
CASES = [
    (f"postgresql://deployer:Sekr3t@Pa55w0rd@{UNREACHABLE}/appdb", ["Sekr3t@Pa55w0rd", "Sekr3t", "Pa55w0rd"], False),
    ("password=Hunter2x Zebra9q host=127.0.0.1 port=9 user=deployer", ["Hunter2x Zebra9q", "Hunter2x", "Zebra9q"],
     False),
    ("host=127.0.0.1 port=9 user=deployer password='a***(b+)?[c]\\\\d$x'", ["a***(b+)?[c]\\d$x", "(b+)?[c]"], True),
    (f"postgresql://deployer@{UNREACHABLE}/appdb?password=QueryPa55word", ["QueryPa55word"], True),
    (f"postgresql://deployer:Pct%40Enc0ded@{UNREACHABLE}/appdb", ["Pct%40Enc0ded", "Pct@Enc0ded"], True),
    (f"postgresql://deployer:Pl41nPassw0rd@{UNREACHABLE}/appdb", ["Pl41nPassw0rd"], True),
]
IDS = ["uri-unencoded-at", "keyvalue-unquoted-space", "stars-and-regex", "uri-query-param", "percent-encoded",
       "plain-uri"]


def _leaks(text: str, forbidden: list[str]) -> list[str]:
    return [secret for secret in forbidden if secret in text]


@pytest.mark.parametrize(("dsn", "forbidden", "clean"), CASES, ids=IDS)
def test_display_and_redact_never_show_the_password(dsn: str, forbidden: list[str], clean: bool) -> None:
    assert (dsn_problem(dsn) is None) == clean
    shown = display_dsn(dsn, "staging")
    assert not _leaks(shown, forbidden), shown
    if not clean:
        assert shown == "the DSN of environment staging (not shown)"
    else:
        assert conninfo_to_dict(shown)["password"] == "***"
    # A driver message that quotes what libpq misread as the host, and one that quotes the DSN.
    host = conninfo_to_dict(dsn).get("host", "") if clean or "://" in dsn else ""
    for message in (f'could not translate host name "{host}" to address', f"invalid dsn: {dsn}"):
        assert not _leaks(redact(message, dsn), forbidden), redact(message, dsn)
    assert secrets_of(dsn), "every case carries a password"


@pytest.mark.parametrize(("dsn", "forbidden", "clean"), CASES, ids=IDS)
@pytest.mark.parametrize("command", ["status", "apply", "verify"])
def test_cli_with_an_unreachable_dsn_never_prints_the_password(tmp_path, dsn: str, forbidden: list[str],
                                                               clean: bool, command: str) -> None:
    project = make_project(tmp_path, None)
    result = project.run(command, "--dsn", dsn, *(["--plain"] if command == "apply" else []), timeout=120)
    out = result.stdout + result.stderr
    assert not _leaks(out, forbidden), out
    assert "Traceback" not in out
    assert result.returncode == (1 if clean else 2), out
    if not clean:
        assert "--dsn: the DSN (not shown) cannot be used" in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: --dsn carries a password")]
    assert len(warnings) == 1, result.stderr
    assert "dsn_env" in warnings[0] and "PGPASSFILE" in warnings[0] and "PGSERVICEFILE" in warnings[0]


@pytest.mark.parametrize(("dsn", "forbidden", "clean"), CASES[:2], ids=IDS[:2])
def test_a_malformed_dsn_in_the_config_or_its_variable_is_refused_without_showing_it(
        tmp_path, dsn: str, forbidden: list[str], clean: bool) -> None:
    project = make_project(tmp_path, None, extra_env=(
        "[environments.staging]\n"
        f"dsn = {json.dumps(dsn)}\n"
        "[environments.production]\n"
        'dsn_env = "DBDEPLOY_NET_TEST_PROD_DSN"\n'))
    staged = project.run("status", "--env", "staging")
    assert staged.returncode == 2
    assert "environments.staging.dsn: the DSN (not shown) cannot be used" in staged.stderr
    from_env = project.run("apply", "--env", "production", "--yes", env={"DBDEPLOY_NET_TEST_PROD_DSN": dsn})
    assert from_env.returncode == 2
    assert "$DBDEPLOY_NET_TEST_PROD_DSN (environment production): the DSN (not shown)" in from_env.stderr
    for result in (staged, from_env):
        out = result.stdout + result.stderr
        assert not _leaks(out, forbidden), out
        assert "warning: --dsn" not in out     # no password on the command line: no warning


@pytest.fixture
def password_role(fresh_db):
    """A role with a password, connectable over TCP (the shared server trusts loopback, so the
    password is not checked — what matters is that dbdeploy never prints it)."""
    pg_server = fresh_db.server
    params = pg_server.params
    if params.get("host", "").startswith("/") or not params.get("host"):
        pytest.skip("needs a TCP server")
    name = f"dbdeploy_t_network_{secrets.token_hex(4)}"
    password = f"S3cr@t {secrets.token_hex(6)} ***(x+)?"
    with pg_server.connect() as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(sql.Identifier(name),
                                                                                   sql.Literal(password)))
    try:
        yield name, password
    finally:
        with fresh_db.connect() as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        with pg_server.connect() as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _uri(pg_server, role: str, password: str, dbname: str) -> str:
    from urllib.parse import quote

    params = pg_server.params
    return (f"postgresql://{role}:{quote(password, safe='')}@{params['host']}:{params.get('port', '5432')}/"
            f"{dbname}")


def test_real_server_with_a_password_role_never_prints_it(fresh_db, tmp_path, password_role) -> None:
    role, password = password_role
    dsn = _uri(fresh_db.server, role, password, fresh_db.name)
    forbidden = [password, dsn.split("@")[0].split(":")[-1], *[w for w in password.split() if len(w) > 4]]
    project = make_project(tmp_path, None)
    applied = project.run("apply", "--dsn", dsn, "--plain")
    assert applied.returncode == 0, applied.stderr
    assert fresh_db.execute("SELECT DISTINCT applied_by FROM migrations.migration_log") == [(role,)]
    status = project.run("status", "--dsn", dsn)
    # The same password in key/value form, and the server's own error (no such database).
    kv = f"host={fresh_db.server.params['host']} port={fresh_db.server.params.get('port', '5432')} user={role} " \
         f"dbname={fresh_db.name}_missing password='{password}'"
    wrong = project.run("rollback", "--to", "0", "--dsn", kv, "--plain")
    assert wrong.returncode == 1 and "does not exist" in wrong.stderr, wrong.stderr
    assert status.returncode == 0, status.stderr
    for result in (applied, status, wrong):
        out = result.stdout + result.stderr
        assert not _leaks(out, forbidden), out
        assert "Traceback" not in out
        assert result.stderr.count("warning: --dsn carries a password") == 1
    # Nothing of the password in the history either.
    history = json.dumps(fresh_db.execute("SELECT * FROM migrations.migration_events"), default=str)
    assert not _leaks(history, forbidden)


def test_dsn_env_with_a_password_gets_no_warning_and_no_leak(fresh_db, tmp_path, password_role) -> None:
    role, password = password_role
    dsn = _uri(fresh_db.server, role, password, fresh_db.name)
    project = make_project(tmp_path, None, extra_env='[environments.staging]\ndsn_env = "DBDEPLOY_NET_STAGING"\n')
    result = project.run("apply", "--env", "staging", "--to", "1", env={"DBDEPLOY_NET_STAGING": dsn})
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    assert password not in result.stdout + result.stderr


def test_generated_tests_do_not_print_a_misread_dsn(tmp_path) -> None:
    """The generated test file reads DBDEPLOY_TEST_DSN: a DSN libpq misreads (the password's tail
    taken for the host) fails the tests without quoting the driver's message."""
    project = make_project(tmp_path, None)
    test_file = next(project.generated.glob("V001__*/test_V001__*.py"))
    dsn = f"postgresql://deployer:Sekr3t@Pa55w0rd@{UNREACHABLE}/appdb"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
                            env=dict(os.environ, DBDEPLOY_TEST_DSN=dsn))
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "cannot connect to the database DBDEPLOY_TEST_DSN names" in out
    assert not _leaks(out, ["Sekr3t", "Pa55w0rd"]), out
