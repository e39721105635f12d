"""Typed settings, validated once, from sources in a fixed order.

Highest first: command-line options, environment variables (`SHUKEI_...`), `./shukei.toml` (or the
file named by `SHUKEI_CONFIG`), then defaults. A wrong setting names its source and key.

The settings are a msgspec Struct: its import and validation cost a few milliseconds, where
pydantic-settings cost 70 ms, paid by every command before it does anything (measured).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from shukei.errors import ConfigError

CONFIG_ENV = "SHUKEI_CONFIG"
DEFAULT_CONFIG = "shukei.toml"
ENV_PREFIX = "SHUKEI_"


class Secret:
    """A secret setting: its value is read with `get_secret_value()`, and it prints as ***."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _model() -> Any:
    # Imported lazily: `shukei --help` must not pay for msgspec.
    from shukei.settings_models import Settings

    return Settings


def load_settings(**overrides: Any) -> Any:
    """Settings from every source; `overrides` are the command line's (None means not given)."""
    config_file = Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG))
    try:
        toml = _read_toml(config_file)
    except Exception as exc:  # e.g. a TOML syntax error
        raise ConfigError(f"cannot read settings from {config_file}: {exc}") from exc
    return load_typed(
        _model(), overrides, toml=toml, toml_source=str(config_file), checks={"timezone": _zone}
    )


def load_typed(
    model: Any,
    overrides: dict[str, Any],
    *,
    toml: dict[str, Any] | None = None,
    toml_source: str = "",
    checks: dict[str, Callable[[Any], None]] | None = None,
) -> Any:
    """An instance of the Struct `model` from overrides, then `SHUKEI_*` variables, then `toml`.

    `checks` are further tests of one setting's value, raising ValueError. A value that does
    not fit raises ConfigError naming the key and where it came from.
    """
    import msgspec

    fields = set(model.__struct_fields__)
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    for key, value in (toml or {}).items():
        values[key], source[key] = value, toml_source
    env = {k.upper(): v for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)}
    for key in fields:
        name = ENV_PREFIX + key.upper()
        if name in env:
            values[key], source[key] = _env_value(model, key, env[name]), f"environment {name}"
    for key, value in overrides.items():
        if value is not None:
            values[key], source[key] = value, "command line"
    try:
        settings = msgspec.convert(values, model, strict=False, dec_hook=_decode)
    except msgspec.ValidationError as exc:
        text = str(exc)
        unknown = re.search(r"unknown field `([^`]*)`", text)
        at = re.search(r" - at `\$\.([A-Za-z0-9_]+)", text)
        key = unknown.group(1) if unknown else at.group(1) if at else "?"
        message = text.split(" - at `")[0]
        kind = _field_type(model, key)
        if get_origin(kind) is Literal:
            message += f" (one of: {', '.join(map(str, get_args(kind)))})"
        where = source.get(key, "default")
        raise ConfigError(f"invalid setting {key} ({where}): {message}") from None
    for key, check in (checks or {}).items():
        try:
            check(getattr(settings, key))
        except ValueError as exc:
            where = source.get(key, "default")
            raise ConfigError(f"invalid setting {key} ({where}): {exc}") from None
    return settings


_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def _env_value(model: Any, key: str, text: str) -> Any:
    """An environment variable's text as the setting's type expects it (msgspec types the rest)."""
    kind = _field_type(model, key)
    text = text.strip()
    if get_origin(kind) is list:  # a list is spelled as JSON, e.g. '["a", "b"]'
        try:
            return json.loads(text)
        except ValueError:
            return text
    if kind is bool and text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    return text


def _field_type(model: Any, key: str) -> Any:
    from msgspec.structs import fields

    return next((f.type for f in fields(model) if f.name == key), None)


def _decode(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str | Path):
        return Path(value)
    if kind is Secret and isinstance(value, str | Secret):
        return value if isinstance(value, Secret) else Secret(value)
    # msgspec reports a ValueError as a ValidationError at this value's path.
    raise ValueError(f"Expected `{kind.__name__}`, got `{type(value).__name__}`")


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    import tomllib

    with path.open("rb") as fh:
        return tomllib.load(fh)


def _zone(value: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r} (e.g. Asia/Tokyo, UTC)") from None


def redact_url(url: str) -> str:
    """A URL or libpq connection string safe to print: any password is replaced by ***."""
    url = re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url)
    return re.sub(r"(password\s*=\s*)('[^']*'|[^&\s]*)", r"\1***", url, flags=re.IGNORECASE)
