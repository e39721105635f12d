"""Settings: every source, their order, types and bounds, and secrets that never print.

The command-line behaviour (exit code 2, one line naming key and source, no warehouse opened) is
in test_cli.py; these call `load_settings` as the CLI does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shukei.errors import ConfigError
from shukei.settings import Secret, load_settings

pytestmark = pytest.mark.usefixtures("clean_env")  # conftest: no SHUKEI_* or shukei.toml leaks


def test_defaults_when_nothing_is_set() -> None:
    s = load_settings()
    assert (s.warehouse, s.timezone, s.chunk_days, s.lock_timeout) == (
        "duckdb:///shukei.duckdb",
        "Asia/Tokyo",
        62,
        10.0,
    )
    assert (s.alert_webhook_url, s.pipeline_paths, s.log_file) == (None, [], None)


def test_each_source_beats_the_next(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "shukei.toml").write_text(
        'chunk_days = 5\nlock_timeout = 1.5\nlog_format = "json"\n', encoding="utf-8"
    )
    monkeypatch.setenv("SHUKEI_CHUNK_DAYS", "7")
    monkeypatch.setenv("SHUKEI_LOCK_TIMEOUT", "2.5")
    s = load_settings(chunk_days=9, lock_timeout=None)  # None: not given on the command line
    assert (s.chunk_days, s.lock_timeout, s.log_format) == (9, 2.5, "json")


def test_config_file_named_by_shukei_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other = tmp_path / "conf" / "prod.toml"
    other.parent.mkdir()
    other.write_text('timezone = "UTC"\n', encoding="utf-8")
    (tmp_path / "shukei.toml").write_text('timezone = "Europe/Paris"\n', encoding="utf-8")
    monkeypatch.setenv("SHUKEI_CONFIG", str(other))
    assert load_settings().timezone == "UTC"


def test_environment_text_is_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHUKEI_ALERT_ON_SUCCESS", " Yes ")
    monkeypatch.setenv("SHUKEI_CHUNK_DAYS", " 5 ")
    monkeypatch.setenv("SHUKEI_GATE_THRESHOLD", "0.95")
    monkeypatch.setenv("SHUKEI_LOG_FILE", "logs/shukei.log")
    monkeypatch.setenv("SHUKEI_PIPELINE_PATHS", '["pipes", "/srv/pipes"]')
    s = load_settings()
    assert s.alert_on_success is True
    assert s.chunk_days == 5
    assert s.gate_threshold == 0.95
    assert s.log_file == Path("logs/shukei.log")
    assert s.pipeline_paths == [Path("pipes"), Path("/srv/pipes")]


@pytest.mark.parametrize(
    ("env", "value", "key"),
    [
        ("SHUKEI_CHUNK_DAYS", "0", "chunk_days"),  # below 1
        ("SHUKEI_CHUNK_DAYS", "3661", "chunk_days"),  # above 3660
        ("SHUKEI_ALERT_TIMEOUT", "0", "alert_timeout"),  # must be > 0
        ("SHUKEI_GATE_THRESHOLD", "1.5", "gate_threshold"),
        ("SHUKEI_MEMORY_LIMIT", "lots", "memory_limit"),
        ("SHUKEI_LOG_FORMAT", "xml", "log_format"),
        ("SHUKEI_LOCK_TIMEOUT", "soon", "lock_timeout"),
        ("SHUKEI_PIPELINE_PATHS", "[1, 2]", "pipeline_paths"),
        ("SHUKEI_TIMEZONE", "Mars/Base", "timezone"),
        ("SHUKEI_ALERT_ON_SUCCESS", "maybe", "alert_on_success"),
    ],
)
def test_a_wrong_value_names_its_key_and_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, key: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as exc:
        load_settings()
    message = str(exc.value)
    assert message.startswith(f"invalid setting {key} (environment {env}): ")
    assert "\n" not in message


def test_a_wrong_value_names_the_command_line_and_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^invalid setting chunk_days \(command line\): "):
        load_settings(chunk_days=0)
    (tmp_path / "shukei.toml").write_text("colour = 'blue'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^invalid setting colour \(shukei.toml\): "):
        load_settings()


def test_the_webhook_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://hooks.example.test/T000/B000/abcdef"
    monkeypatch.setenv("SHUKEI_ALERT_WEBHOOK_URL", url)
    s = load_settings()
    assert isinstance(s.alert_webhook_url, Secret)
    assert s.alert_webhook_url.get_secret_value() == url
    for shown in (repr(s), str(s), repr(s.alert_webhook_url), f"{s.alert_webhook_url}"):
        assert url not in shown
        assert "abcdef" not in shown


def test_a_wrong_choice_lists_the_choices() -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(log_format="xml")
    assert str(exc.value) == (
        "invalid setting log_format (command line): Invalid enum value 'xml' (one of: text, json)"
    )
