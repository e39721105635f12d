"""AWS Lambda-style entry point: `shukei.integrations.aws_lambda.handler(event, context)`.

It runs the same `sync` as `shukei sync sales` (extract, ingest, run). Settings come from the
function's environment (`SHUKEI_WAREHOUSE`, `SHUKEI_SOURCE`, `SHUKEI_STAGING_AREA`,
`SHUKEI_SECRET_ARN`, ...); an event may override a few of them:

    {"pipeline": "sales", "source": "postgresql://shop@db/shop", "warehouse": "postgresql://...",
     "staging": "s3://bucket/prefix", "since": "2025-12-01", "until": "2025-12-07",
     "metrics_file": "/tmp/shukei.prom"}

Without `since`/`until` it extracts through the end of the previous day. The result is the sync's
JSON-able document (no password anywhere). A failure raises `ShukeiError` with a one-line,
password-free message, so the invocation is marked failed and Lambda's retry and dead-letter
settings apply. Without a staging setting, files go under /tmp (the only writable folder).
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

from shukei.errors import UsageError


def _date(event: dict[str, Any], key: str) -> date | None:
    value = event.get(key)
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise UsageError(f"event field {key!r}: {value!r} is not a date (YYYY-MM-DD)") from None


def handler(event: dict[str, Any] | None, context: Any = None) -> dict[str, Any]:
    """Run extract + ingest + run for the event; return the sync document."""
    from shukei import logs
    from shukei.extract.extract import new_run_id, sync
    from shukei.extract.metrics import RunMetrics, write_textfile
    from shukei.extract.secrets import Scrubber
    from shukei.extract.settings import load_extract_settings
    from shukei.project import Project

    event = dict(event or {})
    pipeline = str(event.get("pipeline") or "sales")
    project = Project(warehouse=event.get("warehouse"))
    s = project.settings
    logs.setup(s.log_format, s.log_file, bool(event.get("verbose")))
    staging = event.get("staging")
    if staging is None and "SHUKEI_STAGING_AREA" not in os.environ:
        staging = "/tmp/shukei"
    es = load_extract_settings(source=event.get("source"), staging_area=staging)
    scrub = Scrubber()
    m = RunMetrics(new_run_id(), pipeline)
    metrics_file = event.get("metrics_file")
    try:
        doc = sync(
            project,
            es,
            pipeline=pipeline,
            since=_date(event, "since"),
            until=_date(event, "until"),
            scrub=scrub,
            run_metrics=m,
        )
    finally:
        if m.status != "running":
            m.log_line()
        if metrics_file and m.status != "running":
            write_textfile(Path(str(metrics_file)), m)
    if context is not None and hasattr(context, "aws_request_id"):
        doc["request_id"] = str(context.aws_request_id)
    # JSON-able by construction: dates and times as ISO text, secrets scrubbed.
    result: dict[str, Any] = json.loads(scrub(json.dumps(doc, ensure_ascii=False, default=str)))
    if result["status"] != "success":
        from shukei.errors import RunFailed

        raise RunFailed(str(result.get("error") or "the run failed"))
    return result
