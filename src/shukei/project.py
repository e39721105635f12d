"""The library facade: everything the CLI does, callable from Python (orchestrators, notebooks).

from shukei import Project
project = Project(warehouse="duckdb:///shukei.duckdb")
project.ingest("sales", ["data/"])
report = project.run("sales")
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from shukei.engines import connect
from shukei.engines.base import Engine
from shukei.errors import UsageError
from shukei.pipeline.definition import Pipeline, load_pipeline
from shukei.runner.run import Progress, RunReport
from shukei.settings import load_settings


class Project:
    """One warehouse plus the settings to work on it."""

    def __init__(self, settings: Any = None, **overrides: Any) -> None:
        self.settings = settings if settings is not None else load_settings(**overrides)

    def pipeline(self, name: str) -> Pipeline:
        return load_pipeline(name, list(self.settings.pipeline_paths))

    @contextlib.contextmanager
    def engine(self, read_only: bool = False) -> Iterator[Engine]:
        """Open the warehouse. `read_only`: a reader that needs no writer lock where the engine
        allows one beside a writer (PostgreSQL); DuckDB's file lock admits one process either
        way, so there a reader waits like a writer."""
        s = self.settings
        eng = connect(
            s.warehouse,
            lock_timeout=s.lock_timeout,
            read_only=read_only,
            password_file=s.password_file,
            memory_limit=s.memory_limit,
        )
        try:
            yield eng
        finally:
            eng.close()

    def init_db(self, pipelines: Sequence[str] = ()) -> dict[str, Any]:
        """Create the schemas, state tables and the pipelines' raw/staging tables (idempotent)."""
        from shukei.pipeline.definition import builtin_names
        from shukei.runner.state import SCHEMA_VERSION
        from shukei.staging.tables import ensure_tables

        names = list(pipelines) or builtin_names()
        with self.engine() as eng:
            for name in names:
                with eng.transaction():
                    ensure_tables(eng, self.pipeline(name))
            version = eng.scalar("SELECT max(version) FROM shukei.schema_version")
        assert version == SCHEMA_VERSION
        return {"schema_version": version, "pipelines": names}

    def ingest(
        self,
        pipeline: str,
        inputs: Sequence[str | Path],
        entity: str | None = None,
        progress: Progress | None = None,
    ) -> Any:
        """Load files as one batch; a gated pipeline's batch may be blocked (GateBlocked)."""
        from shukei.alerts import send_alert
        from shukei.errors import GateBlocked
        from shukei.ingest.raw import GateSettings, ingest

        p = self.pipeline(pipeline)
        s = self.settings
        gate = GateSettings(
            s.gate_threshold, _instant(s.gate_min_time), s.gate_max_future_hours, s.timezone
        )
        with self.engine() as eng:
            report = ingest(eng, p, inputs, entity, gate, progress)
        if report.gate is not None and report.gate.blocked:
            summary = report.gate.summary()
            send_alert(s, f":no_entry: shukei {p.name}: {summary}")
            raise GateBlocked(summary, report)
        return report

    def run(
        self,
        pipeline: str,
        dates: Sequence[date] | None = None,
        start: date | None = None,
        end: date | None = None,
        full_refresh: bool = False,
        progress: Progress | None = None,
    ) -> RunReport:
        from datetime import timedelta

        from shukei.runner.run import run

        requested: list[date] | None = None
        if start or end:
            if not (start and end):
                raise UsageError("give both --start-date and --end-date")
            if end < start:
                raise UsageError(f"--end-date {end} is before --start-date {start}")
            requested = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        if dates:
            requested = sorted(set([*(requested or []), *dates]))
        from shukei.alerts import send_alert
        from shukei.errors import ShukeiError

        p = self.pipeline(pipeline)
        try:
            with self.engine() as eng:
                report = run(
                    eng,
                    p,
                    timezone=self.settings.timezone,
                    chunk_days=self.settings.chunk_days,
                    requested=requested,
                    full_refresh=full_refresh,
                    progress=progress,
                )
        except ShukeiError as exc:
            send_alert(self.settings, f":x: shukei {p.name}: run failed: {exc}")
            raise
        if report.status != "success":
            failed = "; ".join(f"{d}: {e}" for d, e in sorted(report.failed.items()))
            send_alert(
                self.settings,
                f":x: shukei {p.name}: run {report.run_id} failed for "
                f"{len(report.failed)} date(s): {failed}",
            )
        elif self.settings.alert_on_success:
            send_alert(self.settings, f":white_check_mark: shukei {p.name}: {report.summary()}")
        return report

    def quality(self, pipeline: str, limit: int = 20) -> dict[str, Any]:
        from shukei.runner.report import quality

        p = self.pipeline(pipeline)
        with self.engine(read_only=True) as eng:
            return quality(eng, p, limit)

    def status(self, pipeline: str, limit: int = 10) -> dict[str, Any]:
        from shukei.runner.report import status

        p = self.pipeline(pipeline)
        with self.engine(read_only=True) as eng:
            return status(eng, p, limit)

    def diff(self, pipeline: str, run_id: str | None = None) -> dict[str, Any]:
        from shukei.runner.report import diff

        p = self.pipeline(pipeline)
        with self.engine(read_only=True) as eng:
            return diff(eng, p, run_id)

    def checks(self, pipeline: str, run_id: str | None = None) -> dict[str, Any]:
        from shukei.runner.report import checks

        p = self.pipeline(pipeline)
        with self.engine(read_only=True) as eng:
            return checks(eng, p, run_id)


def _instant(text: str) -> Any:
    from datetime import UTC, datetime

    from shukei.errors import ConfigError

    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"invalid setting gate_min_time: {text!r} is not ISO 8601") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def to_json(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, default=str)
