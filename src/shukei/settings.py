"""Typed settings, validated once, from sources in a fixed order.

Highest first: command-line options, environment variables (`SHUKEI_...`), `./shukei.toml` (or the
file named by `SHUKEI_CONFIG`), then defaults. A wrong setting names its source and key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from shukei.errors import ConfigError

CONFIG_ENV = "SHUKEI_CONFIG"
DEFAULT_CONFIG = "shukei.toml"


def _model() -> Any:
    # Built lazily: pydantic is a heavy import and `shukei --help` must not pay for it.
    from typing import Literal
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from pydantic import Field, SecretStr, field_validator
    from pydantic_settings import (
        BaseSettings,
        PydanticBaseSettingsSource,
        SettingsConfigDict,
        TomlConfigSettingsSource,
    )

    config_file = Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG))

    class Settings(BaseSettings):
        """Every setting shukei reads. See the README's Configuration section."""

        model_config = SettingsConfigDict(
            env_prefix="SHUKEI_", toml_file=config_file, extra="forbid", validate_default=True
        )

        warehouse: str = Field(
            "duckdb:///shukei.duckdb", description="warehouse URL: duckdb:///FILE"
        )
        timezone: str = Field("Asia/Tokyo", description="business timezone of partition dates")
        chunk_days: int = Field(62, ge=1, le=3660, description="dates rebuilt per transaction")
        lock_timeout: float = Field(
            10.0, ge=0, description="seconds to wait for another writer before failing"
        )
        password_file: Path | None = Field(
            None, description="file holding the PostgreSQL password (Docker/Kubernetes secret)"
        )
        memory_limit: str = Field(
            "1000MB",
            pattern=r"^[0-9]+(\.[0-9]+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
            description="DuckDB memory limit; beyond it DuckDB spills to disk",
        )
        gate_threshold: float = Field(
            0.99, ge=0, le=1, description="share of a gated batch that must pass its checks"
        )
        gate_min_time: str = Field(
            "2000-01-01T00:00:00Z", description="earliest plausible event timestamp (ISO 8601)"
        )
        gate_max_future_hours: float = Field(
            24, ge=0, description="how far past now an event timestamp may be, in hours"
        )
        alert_webhook_url: SecretStr | None = Field(
            None, description="Slack-style incoming webhook for alerts (a secret: never printed)"
        )
        alert_on_success: bool = Field(False, description="also alert after a successful run")
        alert_timeout: float = Field(5.0, gt=0, le=60, description="seconds per alert attempt")
        alert_retries: int = Field(3, ge=1, le=10, description="attempts per alert")
        log_format: Literal["text", "json"] = "text"
        log_file: Path | None = None
        pipeline_paths: list[Path] = Field(
            default_factory=list, description="extra folders holding user pipelines"
        )

        @field_validator("timezone")
        @classmethod
        def _known_zone(cls, value: str) -> str:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown timezone {value!r} (e.g. Asia/Tokyo, UTC)") from exc
            return value

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    return Settings, config_file


def load_settings(**overrides: Any) -> Any:
    """Settings from every source; `overrides` are the command line's (None means not given)."""
    from pydantic import ValidationError

    settings_cls, config_file = _model()
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return settings_cls(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "?"
        source = _source_of(key, given, config_file)
        raise ConfigError(f"invalid setting {key} ({source}): {err['msg']}") from exc
    except Exception as exc:  # e.g. a TOML syntax error
        raise ConfigError(f"cannot read settings from {config_file}: {exc}") from exc


def _source_of(key: str, given: dict[str, Any], config_file: Path) -> str:
    top = key.split(".")[0]
    if top in given:
        return "command line"
    if f"SHUKEI_{top.upper()}" in os.environ:
        return f"environment SHUKEI_{top.upper()}"
    if config_file.exists():
        return f"{config_file}"
    return "default"


def redact_url(url: str) -> str:
    """A URL or libpq connection string safe to print: any password is replaced by ***."""
    url = re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url)
    return re.sub(r"(password\s*=\s*)('[^']*'|[^&\s]*)", r"\1***", url, flags=re.IGNORECASE)
