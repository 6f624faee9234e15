"""Users: salted scrypt hashes, the environment variable, the users file and its setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowkit
from flowkit.config import reset
from flowkit.dashboard import USERS_ENV, Users, hash_password, verify_password


@settings(max_examples=10, deadline=None)  # scrypt is slow on purpose
@given(password=st.text(min_size=1, max_size=40), other=st.text(min_size=1, max_size=40))
def test_a_hash_matches_its_password_only(password: str, other: str) -> None:
    hashed = hash_password(password)
    assert verify_password(password, hashed)
    assert verify_password(other, hashed) is (other == password)


def test_hashes_are_salted() -> None:
    assert hash_password("same") != hash_password("same")
    assert hash_password("same").startswith("scrypt$16384$8$1$")


def test_a_malformed_hash_matches_nothing() -> None:
    assert not verify_password("x", "plain-text")
    assert not verify_password("x", "bcrypt$1$2$3$abc$def")


def test_users_from_the_environment_text() -> None:
    users = Users.from_env_text(" alice:pa:ss , bob:hunter2,")
    assert sorted(users.hashes) == ["alice", "bob"]
    assert users.check("alice", "pa:ss")
    assert not users.check("alice", "hunter2")
    assert not users.check("mallory", "pa:ss")


@pytest.mark.parametrize(
    ("text", "missing"), [("alice", "a password"), ("alice:", "a password"), (":pw", "a name")]
)
def test_a_bad_environment_text_says_what_is_missing(text: str, missing: str) -> None:
    with pytest.raises(flowkit.ConfigError) as caught:
        Users.from_env_text(text)
    assert str(caught.value) == (
        f"{USERS_ENV}: expected name:password pairs separated by commas "
        f"(e.g. 'alice:s3cret,bob:hunter2'), got an entry without {missing}"
    )


def test_users_from_a_file_of_hashes(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"# who may approve\nalice:{hash_password('a')}\n\nbob:{hash_password('b')}\n")
    users = Users.from_file(path)
    assert users.check("alice", "a")
    assert users.check("bob", "b")
    assert not users.check("bob", "a")


def test_a_bad_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"alice:{hash_password('a')}\nbob:plaintext\n")
    with pytest.raises(flowkit.ConfigError) as caught:
        Users.from_file(path)
    assert str(caught.value) == (
        f"{path}:2: expected 'name:scrypt$…' (make a line with "
        "'flowkit dashboard --hash-password NAME')"
    )


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(flowkit.ConfigError, match=r"dashboard_users: cannot read .*nope"):
        Users.from_file(tmp_path / "nope")


def test_the_variable_wins_over_the_file_and_nothing_means_read_only(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"carol:{hash_password('c')}\n")
    assert sorted(Users.configured({USERS_ENV: "dave:d"}, str(path)).hashes) == ["dave"]
    assert sorted(Users.configured({}, str(path)).hashes) == ["carol"]
    assert not Users.configured({USERS_ENV: " "}, None)


def test_the_setting_is_read_from_a_config_file_next_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "flowkit.toml").write_text('dashboard_users = "secrets/users"\n')
    monkeypatch.chdir(tmp_path)
    reset()
    try:
        assert flowkit.config.settings().dashboard_users == str(tmp_path / "secrets" / "users")
    finally:
        reset()


def test_a_bad_setting_says_what_it_must_be() -> None:
    with pytest.raises(flowkit.ConfigError) as caught:
        flowkit.configure(dashboard_users=3)
    reset()
    assert str(caught.value) == (
        "flowkit.configure(): 'dashboard_users' must be the path of a file of name:hash lines, "
        "got an integer 3"
    )
