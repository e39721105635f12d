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

    def ingest(self, pipeline: str, inputs: Sequence[str | Path], entity: str | None = None) -> Any:
        from shukei.ingest.raw import ingest

        p = self.pipeline(pipeline)
        with self.engine() as eng:
            return ingest(eng, p, inputs, entity)

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
        p = self.pipeline(pipeline)
        with self.engine() as eng:
            return run(
                eng,
                p,
                timezone=self.settings.timezone,
                chunk_days=self.settings.chunk_days,
                requested=requested,
                full_refresh=full_refresh,
                progress=progress,
            )

    def status(self, pipeline: str, limit: int = 10) -> dict[str, Any]:
        from shukei.runner.report import status

        p = self.pipeline(pipeline)
        with self.engine() as eng:
            return status(eng, p, limit)

    def diff(self, pipeline: str, run_id: str | None = None) -> dict[str, Any]:
        from shukei.runner.report import diff

        p = self.pipeline(pipeline)
        with self.engine() as eng:
            return diff(eng, p, run_id)

    def checks(self, pipeline: str, run_id: str | None = None) -> dict[str, Any]:
        from shukei.runner.report import checks

        p = self.pipeline(pipeline)
        with self.engine() as eng:
            return checks(eng, p, run_id)


def to_json(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, default=str)
