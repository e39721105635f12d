"""The extractor's own typed settings: `SHUKEI_*` environment variables, then defaults.

Command-line options override them (None means "not given"). They are kept apart from
`shukei.settings` on purpose; `./shukei.toml` is not read for these keys (the main settings forbid
unknown keys there), so set them in the environment or on the command line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from shukei.errors import ConfigError


@dataclass(frozen=True)
class ExtractSettings:
    source: str | None = None
    staging_area: str = "."
    overlap_minutes: float = 10.0
    retention_days: float = 30.0
    statement_timeout_s: float = 300.0
    source_password_file: Path | None = None
    secret_arn: str | None = None
    extract_retries: int = 5
    retry_wait_s: float = 0.5
    file_rows: int = 1_000_000
    staging_format: str = "parquet"


def _model() -> Any:
    # Built lazily: pydantic is a heavy import and `shukei --help` must not pay for it.
    from pydantic import Field
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class Model(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="SHUKEI_", extra="ignore")

        source: str | None = Field(
            None, description="source PostgreSQL URL, without a password (SHUKEI_SOURCE)"
        )
        staging_area: str = Field(
            ".", description="folder or s3:// URL under which etl-data/ holds staged files"
        )
        overlap_minutes: float = Field(
            10.0, ge=0, le=7 * 24 * 60, description="re-read this much before the watermark"
        )
        retention_days: float = Field(
            30.0, ge=0, description="prune ingested staged files older than this"
        )
        statement_timeout_s: float = Field(
            300.0, gt=0, description="statement timeout of every query on the source"
        )
        source_password_file: Path | None = Field(
            None, description="file holding the source password (Docker/Kubernetes secret)"
        )
        secret_arn: str | None = Field(
            None, description="AWS Secrets Manager secret holding the source password"
        )
        extract_retries: int = Field(5, ge=1, le=20, description="attempts per table")
        retry_wait_s: float = Field(
            0.5, ge=0, le=60, description="first backoff wait; doubles per attempt, with jitter"
        )
        file_rows: int = Field(1_000_000, ge=1, description="rows per staged file")
        staging_format: Literal["parquet", "csv"] = Field(
            "parquet",
            description="staged files as Parquet (text columns, lineage in their metadata) or as "
            "the source's own COPY CSV (loads into a PostgreSQL warehouse without conversion)",
        )

    return Model


def load_extract_settings(**overrides: Any) -> ExtractSettings:
    """Settings from the environment; `overrides` (None = not given) win."""
    from pydantic import ValidationError

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        model = _model()(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "?"
        env = f"SHUKEI_{key.upper()}"
        where = (
            "command line" if key in given else f"environment {env}" if env in os.environ else ""
        )
        raise ConfigError(
            f"invalid setting {key}" + (f" ({where})" if where else "") + f": {err['msg']}"
        ) from None
    return ExtractSettings(**model.model_dump())
