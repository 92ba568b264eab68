"""Configuration: dbdeploy.toml, [tool.dbdeploy] in pyproject.toml, defaults and refusals."""

from __future__ import annotations

import pytest

from dbdeploy.errors import ConfigError
from dbdeploy.executor.config import load_config, resolve_dsn


def test_no_configuration_means_embedded_dev(tmp_path) -> None:
    config = load_config(tmp_path)
    assert config.source is None
    assert set(config.environments) == {"dev"}
    assert config.environment("dev").embedded
    assert config.specs == tmp_path / "specs" and config.generated == tmp_path / "generated"
    assert config.history_schema == "migrations"


def test_dbdeploy_toml_is_found_from_a_subfolder(tmp_path) -> None:
    (tmp_path / "dbdeploy.toml").write_text(
        'specs = "db/specs"\ngenerated = "db/out"\nhistory_schema = "deploy_history"\n'
        '[environments.staging]\ndsn = "host=db.example user=app"\nlock_timeout = "3s"\nretries = 7\n'
        '[environments.production]\ndsn_env = "PROD_DSN"\nprotected = true\n')
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    config = load_config(tmp_path / "sub" / "deeper")
    assert config.source == tmp_path / "dbdeploy.toml"
    assert config.specs == tmp_path / "db" / "specs" and config.generated == tmp_path / "db" / "out"
    assert config.history_schema == "deploy_history"
    staging = config.environment("staging")
    assert (staging.dsn, staging.lock_timeout, staging.retries, staging.protected) == (
        "host=db.example user=app", "3s", 7, False)
    assert config.environment("production").protected
    assert config.environment("dev").embedded          # dev stays available


def test_pyproject_tool_section(tmp_path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.dbdeploy]\n[tool.dbdeploy.environments.ci]\ndsn = "dbname=ci"\n')
    config = load_config(tmp_path)
    assert config.environment("ci").dsn == "dbname=ci"


@pytest.mark.parametrize(("text", "message"), [
    ('colour = "blue"\n', "unknown key(s) colour"),
    ('[environments.x]\ndsn = "a"\ndsn_env = "B"\n', "exactly one of dsn, dsn_env or embedded"),
    ('[environments.x]\nprotected = true\n', "exactly one of dsn, dsn_env or embedded"),
    ('[environments.x]\ndsn = "a"\nlock_timeout = "soon"\n', "lock_timeout must look like"),
    ('[environments.x]\ndsn = "a"\nretries = -1\n', "retries must be a whole number"),
    ('[environments.x]\ndsn = "a"\npasswrd = "p"\n', "unknown key(s) passwrd"),
    ('history_schema = "Bad Name"\n', "history_schema must be a lowercase identifier"),
    ('specs = [\n', "cannot be read as TOML"),
])
def test_bad_configuration_names_the_file_and_key(tmp_path, text: str, message: str) -> None:
    (tmp_path / "dbdeploy.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert message in str(info.value)
    assert "dbdeploy.toml" in str(info.value)
    assert info.value.exit_code == 2


def test_unknown_environment_lists_the_known_ones(tmp_path) -> None:
    (tmp_path / "dbdeploy.toml").write_text('[environments.staging]\ndsn = "a"\n')
    with pytest.raises(ConfigError, match="'prod' is not defined .* dev, staging"):
        load_config(tmp_path).environment("prod")


def test_dsn_env_is_read_and_never_falls_back(tmp_path, monkeypatch) -> None:
    (tmp_path / "dbdeploy.toml").write_text('[environments.staging]\ndsn_env = "DBDEPLOY_TEST_STAGING_URL"\n')
    config = load_config(tmp_path)
    env = config.environment("staging")
    monkeypatch.delenv("DBDEPLOY_TEST_STAGING_URL", raising=False)
    with pytest.raises(ConfigError, match="DBDEPLOY_TEST_STAGING_URL.*unset"):
        resolve_dsn(config, env)
    monkeypatch.setenv("DBDEPLOY_TEST_STAGING_URL", "dbname=staging")
    assert resolve_dsn(config, env) == "dbname=staging"
    assert resolve_dsn(config, env, override="dbname=other") == "dbname=other"
