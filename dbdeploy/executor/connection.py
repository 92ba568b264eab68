"""Connections: application_name set, passwords never shown."""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbdeploy.errors import DbdeployError

APPLICATION_NAME = "dbdeploy"


def secrets_of(dsn: str) -> list[str]:
    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        password = None
    found = [password] if password else []
    match = re.search(r"://[^:/@]*:([^@]*)@", dsn)
    if match and match.group(1):
        found.append(match.group(1))
    return found


def redact(text: str, dsn: str) -> str:
    """``text`` with every password of ``dsn`` replaced by ``***``."""
    for secret in secrets_of(dsn):
        text = text.replace(secret, "***")
    return text


def display_dsn(dsn: str) -> str:
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return redact(dsn, dsn)
    if "password" in params:
        params["password"] = "***"
    return make_conninfo(**params)


class ConnectError(DbdeployError):
    exit_code = 1


def connect(dsn: str, environment: str) -> psycopg.Connection:
    try:
        conn = psycopg.connect(dsn, autocommit=True, application_name=APPLICATION_NAME, connect_timeout=10)
    except psycopg.Error as exc:
        raise ConnectError(f"cannot connect to {display_dsn(dsn)} (environment {environment}): "
                           f"{redact(str(exc).strip(), dsn)}") from None
    # Whatever search_path the role or database sets, dbdeploy's own queries resolve built-ins in
    # pg_catalog and never in a temporary schema (the bundles set the same path themselves).
    conn.execute("SET search_path = pg_catalog, pg_temp")
    return conn
