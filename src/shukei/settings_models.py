"""The settings' types and bounds, as msgspec Structs. Loaded by `shukei.settings` on first use.

A module of its own because msgspec reads these annotations at validation time, and `shukei
--help` must not import msgspec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from msgspec import Meta, Struct

from shukei.settings import Secret


class Settings(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Every setting shukei reads. See the README's Configuration section."""

    # warehouse URL: duckdb:///FILE or postgresql://...
    warehouse: str = "duckdb:///shukei.duckdb"
    # business timezone of partition dates (checked against the zone database on load)
    timezone: str = "Asia/Tokyo"
    # dates rebuilt per transaction
    chunk_days: Annotated[int, Meta(ge=1, le=3660)] = 62
    # seconds to wait for another writer before failing
    lock_timeout: Annotated[float, Meta(ge=0)] = 10.0
    # file holding the PostgreSQL password (Docker/Kubernetes secret)
    password_file: Path | None = None
    # DuckDB memory limit; beyond it DuckDB spills to disk
    memory_limit: Annotated[
        str, Meta(pattern=r"^[0-9]+(\.[0-9]+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
    ] = "1000MB"
    # share of a gated batch that must pass its checks
    gate_threshold: Annotated[float, Meta(ge=0, le=1)] = 0.99
    # earliest plausible event timestamp (ISO 8601)
    gate_min_time: str = "2000-01-01T00:00:00Z"
    # how far past now an event timestamp may be, in hours
    gate_max_future_hours: Annotated[float, Meta(ge=0)] = 24
    # Slack-style incoming webhook for alerts (a secret: never printed)
    alert_webhook_url: Secret | None = None
    # also alert after a successful run
    alert_on_success: bool = False
    # seconds per alert attempt
    alert_timeout: Annotated[float, Meta(gt=0, le=60)] = 5.0
    # attempts per alert
    alert_retries: Annotated[int, Meta(ge=1, le=10)] = 3
    log_format: Literal["text", "json"] = "text"
    log_file: Path | None = None
    # extra folders holding user pipelines
    pipeline_paths: list[Path] = []


class ExtractSettings(Struct, frozen=True, kw_only=True):
    """The extractor's settings (`shukei.extract.settings`); unknown SHUKEI_* keys are not read."""

    # source PostgreSQL URL, without a password (SHUKEI_SOURCE)
    source: str | None = None
    # folder or s3:// URL under which etl-data/ holds staged files
    staging_area: str = "."
    # re-read this much before the watermark
    overlap_minutes: Annotated[float, Meta(ge=0, le=7 * 24 * 60)] = 10.0
    # prune ingested staged files older than this
    retention_days: Annotated[float, Meta(ge=0)] = 30.0
    # statement timeout of every query on the source
    statement_timeout_s: Annotated[float, Meta(gt=0)] = 300.0
    # file holding the source password (Docker/Kubernetes secret)
    source_password_file: Path | None = None
    # AWS Secrets Manager secret holding the source password
    secret_arn: str | None = None
    # attempts per table
    extract_retries: Annotated[int, Meta(ge=1, le=20)] = 5
    # first backoff wait; doubles per attempt, with jitter
    retry_wait_s: Annotated[float, Meta(ge=0, le=60)] = 0.5
    # rows per staged file
    file_rows: Annotated[int, Meta(ge=1)] = 1_000_000
    # staged files as Parquet (text columns, lineage in their metadata) or as the source's own
    # COPY CSV (loads into a PostgreSQL warehouse without conversion)
    staging_format: Literal["parquet", "csv"] = "parquet"
