"""The vocabulary's defaults and the one client choice (interlock/vocabulary.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.vocabulary import (
    DEFAULT_DB,
    Given,
    InProcess,
    Remote,
    UsageError,
    choose_client,
    default_key_dir,
    key_dir_for,
    store_slug,
)


@pytest.fixture(autouse=True)
def _state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.mark.parametrize(("url", "expected"), [
    (DEFAULT_DB, Path(".interlock/keys")),
    ("sqlite:///srv/interlock/prod.db", Path("srv/interlock/keys")),
    ("sqlite:////var/lib/interlock/interlock.db", Path("/var/lib/interlock/keys")),
    ("sqlite:////var/lib/interlock/interlock.db?mode=rw", Path("/var/lib/interlock/keys")),
    ("sqlite:///interlock.db", Path("keys")),
])
def test_sqlite_keys_live_beside_the_file(url: str, expected: Path) -> None:
    assert default_key_dir(url) == expected


@pytest.mark.parametrize(("url", "readable"), [
    ("postgresql://app:secret@db.internal:5433/shop", "postgresql-db.internal-5433-shop-"),
    ("postgresql://app@db.internal/shop", "postgresql-db.internal-5432-shop-"),
    ("postgres://db.internal/shop", "postgresql-db.internal-5432-shop-"),
    ("postgresql:///shop?host=/run/postgresql", "postgresql-_run_postgresql-5432-shop-"),
    ("sqlite:///:memory:", "memory-"),
])
def test_other_stores_get_a_per_user_folder_named_after_the_store(url: str, readable: str,
                                                                   _state_home: Path) -> None:
    found = default_key_dir(url)
    assert found.parent == _state_home / "interlock" / "keys"
    assert found.name.startswith(readable)
    assert "secret" not in str(found) and "app" not in found.name


def test_the_user_and_password_do_not_change_a_postgresql_key_folder() -> None:
    assert store_slug("postgresql://a:x@h:5432/d") == store_slug("postgresql://b:y@h/d") \
        != store_slug("postgresql://a:x@h:5432/other")


def test_a_given_key_dir_wins() -> None:
    assert key_dir_for(DEFAULT_DB, "/etc/interlock/keys") == Path("/etc/interlock/keys")
    assert key_dir_for(DEFAULT_DB, None) == Path(".interlock/keys")


URL, FILE = "http://127.0.0.1:8700", "policy.yaml"


@pytest.mark.parametrize(("gateway", "policy", "token", "agent", "expected"), [
    (Given(URL), Given(None), "tok", None, Remote(URL, "tok")),
    (Given(None), Given(FILE), None, "kiro", InProcess(FILE, "kiro", DEFAULT_DB, Path(".interlock/keys"))),
    # the command line beats the environment, either way round
    (Given(URL, False), Given(FILE), None, "kiro", InProcess(FILE, "kiro", DEFAULT_DB, Path(".interlock/keys"))),
    (Given(URL), Given(FILE, False), "tok", None, Remote(URL, "tok")),
])
def test_choose_client(gateway: Given, policy: Given, token: str | None, agent: str | None,
                       expected: Remote | InProcess) -> None:
    assert choose_client(gateway=gateway, policy=policy, token=token, agent=agent) == expected


@pytest.mark.parametrize(("gateway", "policy", "token", "agent", "message"), [
    (Given(None), Given(None), None, None, "no gateway: pass --gateway URL (INTERLOCK_URL"),
    (Given(URL), Given(FILE), "tok", "kiro", "both --gateway and --policy are given on the command line"),
    (Given(URL, False), Given(FILE, False), "tok", "kiro", "in the environment"),
    (Given(URL), Given(None), None, None, "no token for --gateway: set INTERLOCK_TOKEN"),
    (Given(None), Given(FILE), None, None, "--policy needs --agent NAME"),
])
def test_choose_client_refuses(gateway: Given, policy: Given, token: str | None, agent: str | None,
                               message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        choose_client(gateway=gateway, policy=policy, token=token, agent=agent)


def test_a_db_given_moves_the_in_process_key_dir_beside_it() -> None:
    chosen = choose_client(gateway=Given(None), policy=Given(FILE), agent="kiro", db="sqlite:////srv/i.db")
    assert chosen == InProcess(FILE, "kiro", "sqlite:////srv/i.db", Path("/srv/keys"))
