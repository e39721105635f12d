"""Metrics of one extract (and load) run: in the warehouse, a Prometheus textfile and a log line.

| metric (warehouse `shukei.extract_metrics.metric`) | Prometheus name | unit |
|---|---|---|
| ExtractionTime | shukei_extract_extraction_time_seconds | s, first query to last row |
| RecordsExtracted (per table) | shukei_extract_records_extracted{table} | rows |
| StagingWriteTime | shukei_extract_staging_write_time_seconds | s, Parquet + publish |
| StagingReadTime | shukei_extract_staging_read_time_seconds | s, fetch + verify staged files |
| DataLoadTime | shukei_extract_data_load_time_seconds | s, ingest into raw |
| RecordsLoaded (per table) | shukei_extract_records_loaded{table} | rows |
| DBConnectionError | shukei_extract_db_connection_errors | failed attempts on the source |
| SecretRetrievalError | shukei_extract_secret_retrieval_errors | failed secret look-ups |

The textfile follows node_exporter's textfile-collector convention: written to a temporary file in
the same folder, flushed to disk, then renamed over the target (a reader never sees half a file).
Values are those of the last run (gauges), labelled with the pipeline.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from shukei.engines.base import Engine
from shukei.extract import TABLES

log = logging.getLogger("shukei.extract")

PROM = {
    "ExtractionTime": ("shukei_extract_extraction_time_seconds", "Seconds reading the source"),
    "RecordsExtracted": ("shukei_extract_records_extracted", "Rows read from the source"),
    "StagingWriteTime": (
        "shukei_extract_staging_write_time_seconds",
        "Seconds writing and publishing staged Parquet files",
    ),
    "StagingReadTime": (
        "shukei_extract_staging_read_time_seconds",
        "Seconds fetching and verifying staged files before the load",
    ),
    "DataLoadTime": ("shukei_extract_data_load_time_seconds", "Seconds loading into raw"),
    "RecordsLoaded": ("shukei_extract_records_loaded", "Rows loaded into raw"),
    "DBConnectionError": (
        "shukei_extract_db_connection_errors",
        "Failed connection or read attempts on the source (retried or not)",
    ),
    "SecretRetrievalError": (
        "shukei_extract_secret_retrieval_errors",
        "Failed retrievals of the source password",
    ),
}
PER_TABLE = ("RecordsExtracted", "RecordsLoaded")


@dataclass
class RunMetrics:
    run_id: str
    pipeline: str
    extraction_time: float = 0.0
    staging_write_time: float = 0.0
    staging_read_time: float = 0.0
    data_load_time: float = 0.0
    records_extracted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    records_loaded: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    db_connection_errors: int = 0
    secret_retrieval_errors: int = 0
    status: str = "running"
    started: float = field(default_factory=time.time)

    def values(self) -> list[tuple[str, str, float]]:
        """(metric, table or '', value) rows, in a fixed order."""
        out: list[tuple[str, str, float]] = [("ExtractionTime", "", self.extraction_time)]
        out += [("RecordsExtracted", t, float(n)) for t, n in self.records_extracted.items()]
        out += [
            ("StagingWriteTime", "", self.staging_write_time),
            ("StagingReadTime", "", self.staging_read_time),
            ("DataLoadTime", "", self.data_load_time),
        ]
        out += [("RecordsLoaded", t, float(n)) for t, n in self.records_loaded.items()]
        out += [
            ("DBConnectionError", "", float(self.db_connection_errors)),
            ("SecretRetrievalError", "", float(self.secret_retrieval_errors)),
        ]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "ExtractionTime": round(self.extraction_time, 6),
            "RecordsExtracted": dict(self.records_extracted),
            "StagingWriteTime": round(self.staging_write_time, 6),
            "StagingReadTime": round(self.staging_read_time, 6),
            "DataLoadTime": round(self.data_load_time, 6),
            "RecordsLoaded": dict(self.records_loaded),
            "DBConnectionError": self.db_connection_errors,
            "SecretRetrievalError": self.secret_retrieval_errors,
        }

    def log_line(self) -> None:
        """One structured JSON log line with every metric of the run."""
        doc = {
            "event": "extract_metrics",
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            **self.as_dict(),
        }
        log.info("%s", json.dumps(doc, ensure_ascii=False, sort_keys=False))


def ensure_table(engine: Engine) -> None:
    engine.execute("CREATE SCHEMA IF NOT EXISTS shukei")
    engine.execute(
        "CREATE TABLE IF NOT EXISTS shukei.extract_metrics (run_id VARCHAR NOT NULL, "
        "pipeline VARCHAR NOT NULL, metric VARCHAR NOT NULL, table_name VARCHAR NOT NULL, "
        "value DOUBLE PRECISION, recorded_at TIMESTAMPTZ)"
    )


def store(engine: Engine, m: RunMetrics, recorded_at: datetime) -> None:
    """Replace the run's metric rows (a sync stores them after the extract and again after the
    load). Call inside the caller's transaction."""
    ensure_table(engine)
    engine.execute("DELETE FROM shukei.extract_metrics WHERE run_id = ?", (m.run_id,))
    engine.insert_rows(
        "shukei.extract_metrics",
        [
            (m.run_id, m.pipeline, name, table, value, recorded_at)
            for name, table, value in m.values()
        ],
    )


def write_textfile(path: Path, m: RunMetrics) -> None:
    """The run's metrics in Prometheus text format, atomically replacing `path`."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    gauges: dict[str, Gauge] = {}
    for name, table, value in m.values():
        if name not in gauges:
            prom, help_text = PROM[name]
            labels = ["pipeline", "table"] if name in PER_TABLE else ["pipeline"]
            gauges[name] = Gauge(prom, help_text, labels, registry=registry)
        gauge = gauges[name]
        if name in PER_TABLE:
            gauge.labels(pipeline=m.pipeline, table=table).set(value)
        else:
            gauge.labels(pipeline=m.pipeline).set(value)
    ok = Gauge(
        "shukei_extract_success", "1 when the last run succeeded", ["pipeline"], registry=registry
    )
    ok.labels(pipeline=m.pipeline).set(1.0 if m.status == "success" else 0.0)
    last = Gauge(
        "shukei_extract_last_run_timestamp_seconds",
        "Unix time the last run started",
        ["pipeline"],
        registry=registry,
    )
    last.labels(pipeline=m.pipeline).set(m.started)
    data = generate_latest(registry)

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    # node_exporter reads only *.prom files: the temporary name never matches.
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
