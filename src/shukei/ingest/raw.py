"""Load input files into raw tables: every row as text, append-only, with lineage.

One ingest call is one batch. A file whose content (SHA-256) was ingested before is skipped and
reported; the batch, its files and their raw rows commit together or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shukei.engines.base import Engine, RawFile
from shukei.ingest.files import InputFile, discover
from shukei.ingest.gate import GateResult, check_batch, load_batch
from shukei.pipeline.definition import Pipeline
from shukei.staging.merge import merge_batch, pending_batches, set_context
from shukei.staging.tables import ensure_tables

log = logging.getLogger("shukei.ingest")


@dataclass
class IngestReport:
    pipeline: str
    batch_id: int | None
    files: list[dict[str, object]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    gate: GateResult | None = None

    @property
    def rows(self) -> int:
        return sum(int(f["rows"]) for f in self.files)  # type: ignore[call-overload]

    def as_dict(self) -> dict[str, object]:
        return {
            "pipeline": self.pipeline,
            "batch_id": self.batch_id,
            "rows": self.rows,
            "files": self.files,
            "skipped": self.skipped,
            "gate": self.gate.as_dict() if self.gate else None,
        }


@dataclass(frozen=True)
class GateSettings:
    """The gate's settings for one ingest (from typed settings)."""

    threshold: float = 0.99
    min_time: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    max_future_hours: float = 24.0
    timezone: str = "Asia/Tokyo"


def ingest(
    engine: Engine,
    pipeline: Pipeline,
    inputs: Iterable[str | Path],
    entity: str | None = None,
    gate: GateSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """Load the files as one batch. A gated entity's rows pass the pipeline's gate first."""
    files = discover(inputs, pipeline, entity, progress)
    ensure_tables(engine, pipeline)
    known = known_content(engine, pipeline)
    fresh, report = [], IngestReport(pipeline.name, None)
    for f in files:
        if f.sha256 in known:
            report.skipped.append(str(f.path))
            log.info("skipped %s: this content was ingested before", f.path)
        else:
            known.add(f.sha256)
            fresh.append(f)
    if not fresh:
        return report
    now = datetime.now(UTC)
    gs = gate or GateSettings()
    if pipeline.gate is not None:
        # The gate compares a batch with what is loaded (duplicates, funnels, sessions), so
        # batches loaded earlier are merged into staging first.
        set_context(engine, gs.timezone)
        for pending in pending_batches(engine, pipeline):
            with engine.transaction():
                merge_batch(engine, pipeline, pending)
    ahead = [
        RawFile(str(f.path), f.fmt, pipeline.entities[f.entity].column_names, f.header)
        for f in fresh
    ]
    batch_id = next_batch_id(engine, pipeline)
    report.batch_id = batch_id
    with engine.staged(ahead):
        checked: GateResult | None = None
        if pipeline.gate is not None:
            # The gate only reads and fills temp tables: it runs before the loading transaction.
            g = pipeline.gate
            gated = _of_entity(ahead, fresh, g.entity)
            if gated:
                set_context(engine, gs.timezone)
                checked = check_batch(
                    engine,
                    pipeline,
                    g,
                    gated,
                    batch_id,
                    now,
                    g.threshold if g.threshold is not None else gs.threshold,
                    gs.min_time,
                    now + timedelta(hours=gs.max_future_hours),
                )
        with engine.transaction():
            _load(engine, pipeline, fresh, ahead, report, batch_id, now, checked)
    return report


def _load(
    engine: Engine,
    pipeline: Pipeline,
    fresh: list[InputFile],
    ahead: list[RawFile],
    report: IngestReport,
    batch_id: int,
    now: datetime,
    checked: GateResult | None,
) -> None:
    file_rows: list[tuple[object, ...]] = []
    for name in pipeline.input_entities:
        group = [f for f in fresh if f.entity == name]
        if not group:
            continue
        raw_files = _of_entity(ahead, fresh, name)
        if pipeline.gate is not None and pipeline.gate.entity == name:
            assert checked is not None
            load_batch(engine, pipeline, pipeline.gate, checked, now)
            report.gate = checked
            if checked.blocked:
                # Nothing of the batch is loaded and its files are not remembered, so it
                # can be sent again once fixed; the quality log keeps the verdict.
                engine.execute(
                    "INSERT INTO shukei.batches VALUES (?, ?, ?, ?, ?, 'blocked')",
                    (pipeline.name, batch_id, now, len(fresh), len(report.skipped)),
                )
                return
            counts = {f.path: n for f, n in zip(raw_files, checked.file_rows, strict=True)}
        else:
            counts = engine.load_raw(("raw", name), raw_files, (batch_id, now))
        for f in group:
            n = counts.get(str(f.path), 0)
            file_rows.append((pipeline.name, batch_id, name, str(f.path), f.sha256, n))
            report.files.append({"path": str(f.path), "entity": name, "rows": n})
            log.debug("ingested %s (%s): %d rows", f.path, name, n)
        log.info("ingested %d %s file(s): %d rows", len(group), name, sum(counts.values()))
    record_batch(engine, pipeline, batch_id, now, file_rows, len(report.skipped))


def known_content(engine: Engine, pipeline: Pipeline) -> set[str]:
    """The SHA-256 of every file the pipeline ingested: the same content is not loaded twice."""
    rows = engine.fetchall("SELECT sha256 FROM shukei.files WHERE pipeline = ?", (pipeline.name,))
    return {str(r[0]) for r in rows}


def next_batch_id(engine: Engine, pipeline: Pipeline) -> int:
    return int(
        engine.scalar(
            "SELECT coalesce(max(batch_id), 0) + 1 FROM shukei.batches WHERE pipeline = ?",
            (pipeline.name,),
        )
    )


def record_batch(
    engine: Engine,
    pipeline: Pipeline,
    batch_id: int,
    now: datetime,
    file_rows: Sequence[tuple[object, ...]],
    skipped: int,
) -> None:
    """The batch's files (pipeline, batch, entity, path, sha256, rows) and the batch itself,
    waiting for the next run; inside the transaction that loaded its rows."""
    engine.insert_rows("shukei.files", file_rows)
    engine.execute(
        "INSERT INTO shukei.batches VALUES (?, ?, ?, ?, ?, 'loaded')",
        (pipeline.name, batch_id, now, len(file_rows), skipped),
    )


def _of_entity(files: list[RawFile], inputs: list[InputFile], entity: str) -> list[RawFile]:
    """The raw files (parallel to `inputs`) of one entity."""
    return [r for r, f in zip(files, inputs, strict=True) if f.entity == entity]
