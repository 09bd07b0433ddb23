"""The configuration: read from the environment by small pure functions, no default secret."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from portal import config


def test_no_secret_by_default_and_the_web_app_requires_one():
    cfg = config.from_env({})
    assert cfg.secret_key is None
    with pytest.raises(config.ConfigError, match="PORTAL_SECRET_KEY is not set"):
        cfg.require_secret()


@pytest.mark.parametrize(
    "secret",
    [
        secrets.token_urlsafe(32),  # 43 characters of base64url
        secrets.token_urlsafe(48),
        secrets.token_hex(32),
        "development-only-" + secrets.token_urlsafe(48),  # what make run writes
    ],
)
def test_a_strong_secret_is_accepted(secret):
    assert config.from_env({"PORTAL_SECRET_KEY": f" {secret}\n"}).secret_key == secret.encode()


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("changeme", "too short"),
        (secrets.token_urlsafe(31), "too short"),  # 42 characters: 252 bits
        (secrets.token_hex(31), "too short"),  # 62 hex digits: 248 bits
        ("a" * 64, "does not look random"),
        ("ab" * 40, "does not look random"),
        ("correct horse battery staple " * 3, "too short or not written in hex or base64url"),
        ("é" * 64, "too short"),
    ],
)
def test_a_weak_secret_is_refused_with_a_hint(secret, problem):
    with pytest.raises(config.ConfigError, match=problem) as err:
        config.from_env({"PORTAL_SECRET_KEY": secret})
    assert "secrets.token_urlsafe(32)" in err.value.hint


def test_the_keys_setting_takes_a_file_or_a_directory(tmp_path):
    (tmp_path / "keys").mkdir()
    assert config.from_env({"PORTAL_KEYS": str(tmp_path / "keys")}).keys_manifest == (
        tmp_path / "keys" / "manifest.json"
    )
    file = tmp_path / "other.json"
    assert config.from_env({"PORTAL_KEYS": str(file)}).keys_manifest == file


def test_the_older_keys_setting_still_works_and_may_not_disagree(tmp_path):
    file = tmp_path / "m.json"
    assert config.from_env({"PORTAL_KEYS_MANIFEST": str(file)}).keys_manifest == file
    both = {"PORTAL_KEYS": str(file), "PORTAL_KEYS_MANIFEST": str(file)}
    assert config.from_env(both).keys_manifest == file
    with pytest.raises(config.ConfigError, match="name different manifests"):
        config.from_env({"PORTAL_KEYS": str(file), "PORTAL_KEYS_MANIFEST": "/elsewhere.json"})


def test_the_database_defaults_to_sqlite_in_the_data_directory(tmp_path):
    cfg = config.from_env({"PORTAL_DATA_DIR": str(tmp_path)})
    assert cfg.database_url == f"sqlite:///{tmp_path / 'portal.sqlite3'}"
    url = "postgresql+psycopg://portal@db/portal"
    assert config.from_env({"DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", False), ("0", False), ("off", False), ("1", True), ("TRUE", True), ("yes", True)],
)
def test_https_is_off_unless_asked(value, expected):
    assert config.from_env({"PORTAL_HTTPS": value}).https is expected


def test_an_unclear_https_setting_is_refused():
    with pytest.raises(config.ConfigError, match="PORTAL_HTTPS must be 1 or 0"):
        config.from_env({"PORTAL_HTTPS": "maybe"})


def test_the_size_limit_covers_the_longest_account():
    # 100,000 characters, each escaped by JSON as six bytes at worst, inside a padded envelope.
    assert config.Config(Path("k"), Path("d")).max_report_bytes >= 100_000 * 6 * 1.1
