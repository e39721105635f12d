"""Incremental extraction from the operational database into the staging area, and `sync`.

Per table, rows with `updated_at` from (watermark - overlap) are streamed with
`COPY (SELECT ...) TO STDOUT (FORMAT csv)` inside one REPEATABLE READ READ ONLY transaction (a
consistent snapshot of the four tables), read straight from libpq in blocks of whole rows
(`source_db.copy_out`) and written by a second thread: parsed by pyarrow into Parquet files of
text columns (the input contract; row groups of DuckDB's size), or, with `staging_format = csv`,
as the COPY output itself after a header line. Memory stays bounded whatever the table's size.
Times travel as UTC instants (`2025-12-01 01:00:24+00`).

Nothing is counted as done until it is durable: the run's files are published first, then one
warehouse transaction records the run, its files, the new watermarks and the metrics. A failure
that outlives its retries (exponential backoff with jitter, each attempt logged) deletes the run's
files and leaves the watermarks where they were; the run is recorded as failed.

`sync` (`extract(..., load=True)`, a local staging area) also ingests each file as soon as it is
staged, through `ingest.stream.StreamedBatch`: the writers tell it about every block, staged
file and abandoned attempt (`_Hooks`), and its transaction is the one that records the run, so
the batch counts exactly when the run does.

The new watermark of a table is the latest `updated_at` extracted (`max(updated_at)` of the
window, in the same snapshot; never beyond the snapshot's `now()`, so a row stamped in the future
is read again rather than hiding later rows). The overlap window re-reads rows committed late
by long transactions (their `updated_at` is their transaction's start); rows read twice are
harmless because staging keeps the latest version.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import secrets as _random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from shukei.errors import EngineError, ShukeiError, UsageError
from shukei.extract import TABLES
from shukei.extract import metrics as metrics_mod
from shukei.extract import staging_area as sa
from shukei.extract.metrics import RunMetrics
from shukei.extract.secrets import (
    Credentials,
    Scrubber,
    SecretError,
    resolve_credentials,
    url_secrets,
)
from shukei.extract.settings import ExtractSettings
from shukei.extract.source_db import (
    SELECTS,
    SourceError,
    classify,
    clean,
    connect,
    copy_out,
    source_label,
)

log = logging.getLogger("shukei.extract")
T = TypeVar("T")

BLOCK_BYTES = 1 << 20  # CSV bytes handed on at a time (1 MB pipelines better than 8 MB)
ROW_GROUP_ROWS = 122_880  # DuckDB's row group size: staged row groups are exactly this big
APPLICATION_NAME = "shukei-extract"


class ExtractFailed(ShukeiError):
    """Extraction failed after its retries; nothing of the run counts as done."""

    exit_code = 1


# -- state: runs and watermarks ----------------------------------------------------------------
def ensure_state(engine: Any) -> None:
    """The extractor's state tables in the warehouse's `shukei` schema (idempotent)."""
    engine.execute("CREATE SCHEMA IF NOT EXISTS shukei")
    engine.execute(
        "CREATE TABLE IF NOT EXISTS shukei.extract_runs (run_id VARCHAR PRIMARY KEY, "
        "pipeline VARCHAR NOT NULL, source VARCHAR NOT NULL, mode VARCHAR NOT NULL, "
        "window_from TIMESTAMPTZ, window_to TIMESTAMPTZ, started_at TIMESTAMPTZ NOT NULL, "
        "finished_at TIMESTAMPTZ, status VARCHAR NOT NULL, error VARCHAR)"
    )
    engine.execute(
        "CREATE TABLE IF NOT EXISTS shukei.extract_watermarks (pipeline VARCHAR NOT NULL, "
        "source VARCHAR NOT NULL, table_name VARCHAR NOT NULL, watermark TIMESTAMPTZ NOT NULL, "
        "run_id VARCHAR NOT NULL, updated_at TIMESTAMPTZ NOT NULL, "
        "PRIMARY KEY (pipeline, source, table_name))"
    )
    sa.ensure_table(engine)
    metrics_mod.ensure_table(engine)


def read_watermarks(engine: Any, pipeline: str, source: str) -> dict[str, datetime]:
    rows = engine.fetchall(
        "SELECT table_name, watermark FROM shukei.extract_watermarks WHERE pipeline = ? "
        "AND source = ?",
        (pipeline, source),
    )
    return {str(t): _aware(w) for t, w in rows}


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def new_run_id() -> str:
    now = datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{_random.token_hex(3)}"


# -- the run -----------------------------------------------------------------------------------
@dataclass
class TableResult:
    table: str
    lower: datetime | None
    upper: datetime | None
    rows: int = 0
    files: list[sa.StagedFile] = field(default_factory=list)
    max_updated: datetime | None = None
    snapshot: datetime | None = None
    attempts: int = 0


@dataclass
class ExtractReport:
    run_id: str
    pipeline: str
    source: str
    mode: str  # incremental | window
    staging: str
    started_at: datetime
    tables: dict[str, TableResult] = field(default_factory=dict)
    watermarks_before: dict[str, datetime] = field(default_factory=dict)
    watermarks_after: dict[str, datetime] = field(default_factory=dict)
    status: str = "running"
    error: str | None = None
    seconds: float = 0.0
    pruned: list[str] = field(default_factory=list)
    metrics: RunMetrics | None = None
    ingested: Any = None  # the IngestReport when the files were loaded as they were staged

    @property
    def files(self) -> list[sa.StagedFile]:
        return [f for t in TABLES if t in self.tables for f in self.tables[t].files]

    def as_dict(self) -> dict[str, Any]:
        def iso(v: datetime | None) -> str | None:
            return v.astimezone(UTC).isoformat() if v is not None else None

        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "error": self.error,
            "source": self.source,
            "mode": self.mode,
            "staging": self.staging,
            "started_at": iso(self.started_at),
            "seconds": round(self.seconds, 3),
            "tables": {
                t: {
                    "rows": r.rows,
                    "from": iso(r.lower),
                    "to": iso(r.upper),
                    "files": [f.location for f in r.files],
                    "watermark_before": iso(self.watermarks_before.get(t)),
                    "watermark_after": iso(self.watermarks_after.get(t)),
                    "attempts": r.attempts,
                }
                for t, r in self.tables.items()
            },
            "files": len(self.files),
            "rows": sum(r.rows for r in self.tables.values()),
            "pruned": self.pruned,
            "metrics": self.metrics.as_dict() if self.metrics else None,
        }

    def summary(self) -> str:
        parts = ", ".join(f"{t} {r.rows:,}" for t, r in self.tables.items())
        return (
            f"extract {self.run_id} from {self.source} ({self.mode}): {parts} rows in "
            f"{len(self.files)} file(s) under {self.staging}"
        )


def check_pipeline(project: Any, pipeline: str) -> None:
    """The operational schema feeds a pipeline whose entities are the four tables' contract."""
    p = project.pipeline(pipeline)
    for table in TABLES:
        ent = p.entities.get(table)
        want = tuple(c for c, _ in SELECTS[table])
        if ent is None or tuple(ent.column_names) != want:
            raise UsageError(
                f"pipeline {p.name!r} does not take the operational tables "
                f"({', '.join(TABLES)}) as input; extraction feeds the sales pipeline"
            )


def _day_start(d: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, dtime(0), tz)


def extract(
    project: Any,
    es: ExtractSettings,
    *,
    pipeline: str = "sales",
    since: date | None = None,
    until: date | None = None,
    scrub: Scrubber | None = None,
    run_metrics: RunMetrics | None = None,
    load: bool = False,
) -> ExtractReport:
    """Extract new and changed rows (or the window `since`..`until`) into the staging area.

    `until` alone caps an incremental extract at the end of that day (business timezone); with
    `since` it is an explicit window that leaves the watermarks alone. Raises ExtractFailed.

    `load`: also ingest the files, each one as soon as it is staged, as one batch that commits
    in the same warehouse transaction as the run and its watermarks (`rep.ingested`). The
    warehouse stays open for the whole extract. A local staging area only.
    """
    if not load:
        return _extract(project, None, es, pipeline, since, until, scrub, run_metrics)
    with project.engine() as eng:
        return _extract(project, eng, es, pipeline, since, until, scrub, run_metrics)


@contextlib.contextmanager
def _warehouse(project: Any, eng: Any) -> Iterator[Any]:
    """The open warehouse `eng`, or one opened for the block (not held between steps)."""
    if eng is not None:
        yield eng
        return
    with project.engine() as opened:
        yield opened


def _extract(
    project: Any,
    eng: Any,
    es: ExtractSettings,
    pipeline: str,
    since: date | None,
    until: date | None,
    scrub: Scrubber | None,
    run_metrics: RunMetrics | None,
) -> ExtractReport:
    """`extract`; with `eng` (an open warehouse) the files are loaded as they are staged."""
    scrub = scrub or Scrubber()
    check_pipeline(project, pipeline)
    url = es.source
    if not url:
        raise UsageError("no source database: pass --source URL or set SHUKEI_SOURCE")
    scrub.add_url(url)
    if url_secrets(url):
        log.warning(
            "the source URL carries a password; prefer source_password_file, PGPASSFILE or "
            "secret_arn (the password is never printed)"
        )
    if since and until and until < since:
        raise UsageError(f"--until {until} is before --since {since}")
    tz = ZoneInfo(project.settings.timezone)
    label = source_label(url)
    run_id = run_metrics.run_id if run_metrics else new_run_id()
    m = run_metrics or RunMetrics(run_id, pipeline)
    area = sa.StagingArea(es.staging_area)
    if eng is not None and area.remote:
        raise UsageError("files are loaded as they are staged only from a local staging area")
    started = datetime.now(UTC)
    rep = ExtractReport(
        run_id,
        pipeline,
        label,
        "window" if since else "incremental",
        area.display,
        started,
        metrics=m,
    )
    t0 = time.perf_counter()

    with _warehouse(project, eng) as w, w.transaction():
        ensure_state(w)
        rep.watermarks_before = read_watermarks(w, pipeline, label)
    upper = _day_start(until + timedelta(days=1), tz) if until else None
    overlap = timedelta(minutes=es.overlap_minutes)
    for table in TABLES:
        if since:
            lower: datetime | None = _day_start(since, tz)
        else:
            wm = rep.watermarks_before.get(table)
            lower = wm - overlap if wm else None
        rep.tables[table] = TableResult(table, lower, upper)

    try:
        creds = resolve_credentials(
            password_file=es.source_password_file, secret_arn=es.secret_arn, scrub=scrub, log=log
        )
    except SecretError as exc:
        m.secret_retrieval_errors += 1
        _fail(project, eng, rep, m, scrub(str(exc)), t0)
        raise ExtractFailed(scrub(str(exc))) from None

    day = datetime.now(tz).date().isoformat()
    session = _Session(url, creds, scrub, es, label)
    t_ex = time.perf_counter()
    current = rep.tables[TABLES[0]]
    batch = None

    def give_up(why: str) -> ExtractFailed:
        """Roll back what was loaded, delete the run's files, record the run as failed; the
        error to raise says why and that nothing counts."""
        _abandon(rep, batch)
        msg = scrub(f"{why}; nothing was staged and the watermarks are unchanged")
        _fail(project, eng, rep, m, msg, t0)
        return ExtractFailed(msg)

    try:
        if eng is not None:
            from shukei.ingest.stream import StreamedBatch

            batch = StreamedBatch(eng, project.pipeline(pipeline), started)  # opens a transaction
        for table in TABLES:
            current = rep.tables[table]
            _retrying(
                es,
                m,
                current,
                f"extract of {table} from {label}",
                functools.partial(
                    _extract_table, session, area, current, run_id, day, es, m, batch
                ),
            )
            m.records_extracted[table] = current.rows
        m.extraction_time = time.perf_counter() - t_ex
    except SourceError as exc:
        m.extraction_time = time.perf_counter() - t_ex
        why = f"cannot extract {current.table} after {current.attempts} attempt(s): {exc}"
        raise give_up(why) from None
    except ShukeiError as exc:  # the warehouse refused rows loaded as they were staged
        raise give_up(f"cannot ingest {current.table}: {exc}") from None
    except Exception as exc:  # the staging area failed (disk full, S3 refused...)
        log.debug("staging failure detail: %s", scrub(repr(exc)))
        raise give_up(f"cannot stage {current.table}: {clean(exc)}") from None
    except BaseException:
        _abandon(rep, batch)
        m.status = "failed"
        raise
    finally:
        session.close()
        area.close()

    # Durable files first; now one transaction makes them count.
    if not since:
        for table, res in rep.tables.items():
            before = rep.watermarks_before.get(table)
            seen = res.max_updated
            if seen is not None and res.snapshot is not None:
                seen = min(seen, res.snapshot)
            new = max(d for d in (before, seen) if d is not None) if (before or seen) else None
            if new is not None:
                rep.watermarks_after[table] = new
    else:
        rep.watermarks_after = dict(rep.watermarks_before)
    finished = datetime.now(UTC)
    m.status = "success"
    if batch is not None:
        try:
            t = time.perf_counter()
            rep.ingested = batch.finish()
            m.data_load_time += batch.busy + time.perf_counter() - t
        except ShukeiError as exc:  # the warehouse refused rows
            raise give_up(f"cannot ingest the staged files: {exc}") from None
        except BaseException:
            _abandon(rep, batch)
            m.status = "failed"
            raise
        _count_loaded(m, rep.ingested)
    try:
        with (
            _warehouse(project, eng) as w,
            w.transaction() if batch is None else contextlib.nullcontext(),
        ):
            _record(w, rep, m, since, finished)
            if batch is not None:
                locations = [f.location for f in rep.files]
                sa.mark_ingested(w, locations, rep.ingested.batch_id, finished)
                batch.commit()
    except BaseException:
        _abandon(rep, batch)  # not recorded: the files would never be ingested nor pruned
        m.status = "failed"
        raise
    rep.status = "success"
    rep.seconds = time.perf_counter() - t0
    log.info("%s", rep.summary())
    return rep


def _record(
    eng: Any, rep: ExtractReport, m: RunMetrics, since: date | None, finished: datetime
) -> None:
    """What makes the staged files count: the run, its files, the new watermarks, metrics."""
    ensure_state(eng)
    _insert_run(eng, rep, "success", None, finished)
    sa.record(
        eng,
        rep.files,
        run_id=rep.run_id,
        pipeline=rep.pipeline,
        source=rep.source,
        staged_at=finished,
    )
    if not since:
        for table, wm in rep.watermarks_after.items():
            if rep.watermarks_before.get(table) == wm:
                continue
            eng.execute(
                "DELETE FROM shukei.extract_watermarks WHERE pipeline = ? AND source = ? "
                "AND table_name = ?",
                (rep.pipeline, rep.source, table),
            )
            eng.execute(
                "INSERT INTO shukei.extract_watermarks VALUES (?, ?, ?, ?, ?, ?)",
                (rep.pipeline, rep.source, table, wm, rep.run_id, finished),
            )
    metrics_mod.store(eng, m, finished)


def _insert_run(eng: Any, rep: ExtractReport, status: str, error: str | None, at: datetime) -> None:
    first = next(iter(rep.tables.values()), None)
    eng.execute("DELETE FROM shukei.extract_runs WHERE run_id = ?", (rep.run_id,))
    eng.execute(
        "INSERT INTO shukei.extract_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            rep.run_id,
            rep.pipeline,
            rep.source,
            rep.mode,
            first.lower if first and rep.mode == "window" else None,
            first.upper if first else None,
            rep.started_at,
            at,
            status,
            error,
        ),
    )


def _fail(project: Any, eng: Any, rep: ExtractReport, m: RunMetrics, msg: str, t0: float) -> None:
    """Record a failed run and its metrics (best effort: the warehouse may be the problem)."""
    rep.status = "failed"
    rep.error = msg
    rep.seconds = time.perf_counter() - t0
    m.status = "failed"
    try:
        with _warehouse(project, eng) as w, w.transaction():
            ensure_state(w)
            _insert_run(w, rep, "failed", msg, datetime.now(UTC))
            metrics_mod.store(w, m, datetime.now(UTC))
    except (EngineError, ShukeiError) as exc:
        log.warning("cannot record the failed extract run in the warehouse: %s", exc)


def _abandon(rep: ExtractReport, batch: Any) -> None:
    """Roll back what was loaded of the run's files (when they were), then delete them."""
    if batch is not None:
        batch.abort()
    _discard(rep)


def _discard(rep: ExtractReport) -> None:
    for res in rep.tables.values():
        for f in res.files:
            with contextlib.suppress(Exception):
                sa.delete(f.location)
        res.files = []
        res.rows = 0
        res.max_updated = None


def _retrying(
    es: ExtractSettings, m: RunMetrics, res: TableResult, what: str, fn: Callable[[], T]
) -> T:
    """Run `fn`; a transient SourceError is retried with exponential backoff and jitter."""
    from tenacity import (
        RetryCallState,
        Retrying,
        retry_if_exception,
        stop_after_attempt,
        wait_exponential_jitter,
    )

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s failed (attempt %d of %d): %s; retrying in %.2fs",
            what,
            state.attempt_number,
            es.extract_retries,
            exc,
            wait,
        )

    for attempt in Retrying(
        retry=retry_if_exception(lambda e: isinstance(e, SourceError) and e.transient),
        stop=stop_after_attempt(es.extract_retries),
        wait=wait_exponential_jitter(
            multiplier=es.retry_wait_s, max=max(es.retry_wait_s, 30.0), jitter=es.retry_wait_s
        ),
        before_sleep=before_sleep,
        reraise=True,
    ):
        with attempt:
            res.attempts = attempt.retry_state.attempt_number
            try:
                return fn()
            except SourceError:
                m.db_connection_errors += 1
                raise
    raise AssertionError("unreachable")


class _Session:
    """One read-only connection and snapshot, re-opened after a failure."""

    def __init__(
        self, url: str, creds: Credentials, scrub: Scrubber, es: ExtractSettings, label: str
    ) -> None:
        self.url, self.creds, self.scrub, self.es, self.label = url, creds, scrub, es, label
        self.conn: Any = None
        self.snapshot: datetime | None = None

    def begin(self) -> tuple[Any, datetime]:
        import psycopg

        if self.conn is None or self.conn.closed:
            self.conn = connect(
                self.url,
                self.creds,
                self.scrub,
                application_name=APPLICATION_NAME,
                statement_timeout_s=self.es.statement_timeout_s,
            )
            try:
                self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                self.snapshot = _aware(self.conn.execute("SELECT now()").fetchone()[0])
            except psycopg.Error as exc:
                self.reset()
                raise classify(exc, f"cannot read the source {self.label}", self.scrub) from None
        assert self.snapshot is not None
        return self.conn, self.snapshot

    def reset(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = None

    def close(self) -> None:
        if self.conn is not None and not self.conn.closed:
            with contextlib.suppress(Exception):
                self.conn.execute("COMMIT")  # a read-only transaction: nothing to keep
        self.reset()


def _window(lower: datetime | None, upper: datetime | None) -> tuple[list[Any], list[datetime]]:
    """The `updated_at` conditions of a table's window, with their bound values."""
    from psycopg import sql

    where: list[Any] = []
    values: list[datetime] = []
    if lower is not None:
        where.append(sql.SQL("updated_at >= %s::timestamptz"))
        values.append(lower)
    if upper is not None:
        where.append(sql.SQL("updated_at < %s::timestamptz"))
        values.append(upper)
    return where, values


def _copy_sql(table: str, lower: datetime | None, upper: datetime | None) -> Any:
    from psycopg import sql

    cols = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(sql.Identifier(expr), sql.Identifier(name))
        for name, expr in SELECTS[table]
    )
    # COPY takes no bound parameters: the window's instants are quoted by libpq instead.
    where: list[Any] = []
    if lower is not None:
        where.append(sql.SQL("updated_at >= {}::timestamptz").format(sql.Literal(lower)))
    if upper is not None:
        where.append(sql.SQL("updated_at < {}::timestamptz").format(sql.Literal(upper)))
    cond = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    return sql.SQL("COPY (SELECT {} FROM {}{}) TO STDOUT (FORMAT csv)").format(
        cols, sql.Identifier(table), cond
    )


def _max_updated(
    conn: Any, table: str, lower: datetime | None, upper: datetime | None
) -> datetime | None:
    """The latest `updated_at` of the window, in the snapshot the COPY read (index-only)."""
    from psycopg import sql

    where, values = _window(lower, upper)
    cond = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    query = sql.SQL("SELECT max(updated_at) FROM {}{}").format(sql.Identifier(table), cond)
    top = conn.execute(query, values).fetchone()[0]
    return _aware(top) if top is not None else None


def _extract_table(
    session: _Session,
    area: sa.StagingArea,
    res: TableResult,
    run_id: str,
    day: str,
    es: ExtractSettings,
    m: RunMetrics,
    batch: Any = None,
) -> None:
    import psycopg

    conn, snapshot = session.begin()
    res.snapshot = snapshot
    kind = _CsvWriter if es.staging_format == "csv" else _ParquetWriter
    hooks = _hooks(batch, res.table, kind)
    writer = kind(area, res.table, run_id, day, es.file_rows, session.label, hooks)
    try:
        query = _copy_sql(res.table, res.lower, res.upper).as_bytes(conn)
        copy_out(conn, query, writer.put, BLOCK_BYTES, writer.cut)
        writer.finish()
        top = _max_updated(conn, res.table, res.lower, res.upper) if writer.rows else None
    except psycopg.Error as exc:
        writer.abort()
        session.reset()
        raise classify(
            exc, f"cannot read {res.table} from {session.label}", session.scrub
        ) from None
    except BaseException:
        writer.abort()
        session.reset()
        raise
    finally:
        m.staging_write_time += writer.busy
    res.files = writer.staged
    res.rows = writer.rows
    res.max_updated = top


Staged = Callable[[sa.StagedFile], None]
Fed = Callable[[str, bytearray], None]
Gone = Callable[[list[str]], None]


@dataclass
class _Hooks:
    """How a writer tells the batch loading its files what happens: rows on their way into a
    file (`block`, only when the warehouse takes rows as a stream), a file staged, or files
    about to be deleted because the attempt failed (`gone`)."""

    block: Fed | None = None
    staged: Staged | None = None
    gone: Gone | None = None


def _hooks(batch: Any, table: str, kind: type[_Writer]) -> _Hooks:
    if batch is None:
        return _Hooks()
    from shukei.ingest.stream import StreamedFile

    fmt = kind.suffix.lstrip(".")

    def staged(f: sa.StagedFile) -> None:
        batch.add(StreamedFile(f.location, table, fmt, f.sha256))

    def block(location: str, rows: bytearray) -> None:
        batch.feed(StreamedFile(location, table, fmt), rows)  # never changed once handed over

    def gone(locations: list[str]) -> None:
        batch.drop([StreamedFile(loc, table, fmt) for loc in locations])

    return _Hooks(block if batch.streams else None, staged, gone)


def _file_layout(file_rows: int) -> tuple[int, int]:
    """(rows per row group, rows per file): Parquet files hold whole row groups of DuckDB's size."""
    if file_rows < ROW_GROUP_ROWS:
        return file_rows, file_rows
    return ROW_GROUP_ROWS, file_rows - file_rows % ROW_GROUP_ROWS


class _Writer:
    """Writes blocks of COPY CSV rows into staged files in a second thread.

    The reading loop hands over blocks (at most two wait), so memory stays bounded; an error in
    the thread surfaces in the next `put` or in `finish`. Subclasses write one format.
    """

    suffix = ""
    whole_files = False  # True: no block may span two files (see `cut`)

    def __init__(
        self,
        area: sa.StagingArea,
        table: str,
        run_id: str,
        day: str,
        file_rows: int,
        label: str,
        hooks: _Hooks | None = None,
    ) -> None:
        self.area, self.table, self.run_id, self.day = area, table, run_id, day
        self.hooks = hooks or _Hooks()
        self.label = label
        self.file_rows = self._setup(file_rows)
        # For `copy_out`: no block spans two files when each file must be whole on its own,
        # or when blocks are also fed to the warehouse under the name of their file.
        self.cut = self.file_rows if self.whole_files or self.hooks.block else 0
        self._put_rows = 0
        self._fed: list[str] = []  # files whose rows were fed (see `put`)
        self.columns = [c for c, _ in SELECTS[table]]
        self.staged: list[sa.StagedFile] = []
        self.rows = 0
        self.busy = 0.0
        self._part = 0
        self._file_rows = 0
        self._open = False
        self._tmp: Any = None
        self._name = ""
        self._error: BaseException | None = None
        self._q: queue.Queue[tuple[bytearray, int] | None] = queue.Queue(maxsize=2)
        self._thread = threading.Thread(target=self._work, name=f"stage-{table}", daemon=True)
        self._thread.start()

    def put(self, block: bytearray, rows: int) -> None:
        if self.hooks.block is not None:
            # Blocks never span files (`cut`) and files hold `file_rows` rows, so the rows
            # so far tell the file this block goes to.
            part = self._put_rows // self.file_rows + 1
            location = self.area.location(self.day, self._file_name(part))
            if not self._fed or self._fed[-1] != location:
                self._fed.append(location)
            self.hooks.block(location, block)
        self._put_rows += rows
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._q.put((block, rows), timeout=0.5)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        t = time.perf_counter()
        self._flush()
        self._close_file()
        self.busy += time.perf_counter() - t

    def abort(self) -> None:
        """Stop, and delete what was staged (after `hooks.gone`, with the files fed too)."""
        if self._thread.is_alive():
            self._error = self._error or RuntimeError("aborted")
            with contextlib.suppress(Exception):
                while True:
                    self._q.get_nowait()
            self._q.put(None)
            self._thread.join()
        if self._open:
            with contextlib.suppress(Exception):
                self._close()
            self._open = False
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
        gone = [f.location for f in self.staged]
        gone += [loc for loc in self._fed if loc not in gone]
        if self.hooks.gone is not None and gone:
            self.hooks.gone(gone)
        for f in self.staged:
            with contextlib.suppress(Exception):
                sa.delete(f.location)
        self.staged = []

    def _work(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            if self._error is not None:
                continue
            t = time.perf_counter()
            try:
                self._consume(*item)
            except BaseException as exc:
                self._error = exc
            finally:
                del item
                self.busy += time.perf_counter() - t

    def _file_name(self, part: int) -> str:
        return f"{self.table}-{self.run_id}-{part:04d}{self.suffix}"

    def _new_file(self) -> Any:
        self._part += 1
        self._name = self._file_name(self._part)
        self._tmp = self.area.temp_path(self.day, self._name)
        self._file_rows = 0
        self._open = True
        return self._tmp

    def _close_file(self) -> None:
        if not self._open:
            return
        digest = self._close()
        self._open = False
        tmp, self._tmp = self._tmp, None
        rows, self._file_rows = self._file_rows, 0
        staged = self.area.publish(tmp, self.table, self.day, self._name, rows, sha256=digest)
        self.staged.append(staged)
        if self.hooks.staged is not None:
            self.hooks.staged(staged)

    # -- the format ------------------------------------------------------------------------
    def _setup(self, file_rows: int) -> int:
        """Prepare the format before the writing thread starts; returns the rows per file."""
        return file_rows

    def _consume(self, block: bytearray, rows: int) -> None:
        raise NotImplementedError

    def _flush(self) -> None:
        """Write what `_consume` kept back (called once, after the last block)."""

    def _close(self) -> str | None:
        """Complete the open file; its SHA-256 when it was computed on the way."""
        raise NotImplementedError


class _CsvWriter(_Writer):
    """The COPY output as it came, after a header line: no parsing, no conversion.

    A file's rows never span two blocks (`cut`), so files hold exactly `file_rows` rows (the
    last one fewer); the SHA-256 is computed as the bytes are written.
    """

    suffix = ".csv"
    whole_files = True

    _fh: Any = None
    _hash: Any = None

    def _consume(self, block: bytearray, rows: int) -> None:
        import csv
        import hashlib
        import io

        if not self._open:
            head = io.StringIO()
            csv.writer(head, lineterminator="\n").writerow(self.columns)
            header = head.getvalue().encode()
            self._fh = open(self._new_file(), "wb")  # noqa: SIM115 - closed in _close
            self._hash = hashlib.sha256(header)
            self._fh.write(header)
        self._fh.write(block)
        self._hash.update(block)
        self._file_rows += rows
        self.rows += rows
        if self._file_rows > self.file_rows:
            raise RuntimeError(f"a block of {self.table} spans two staged files")
        if self._file_rows == self.file_rows:
            self._close_file()

    def _close(self) -> str | None:
        fh, self._fh = self._fh, None
        fh.close()
        return str(self._hash.hexdigest())


class _ParquetWriter(_Writer):
    """Parses the blocks with pyarrow (which releases the GIL) into Parquet files of text columns.

    Row groups hold exactly `ROW_GROUP_ROWS` rows (only a file's last one may hold fewer) and a
    file holds whole row groups: DuckDB then appends every group as it is, where groups of
    other sizes are re-packed at commit (measured: that doubled the load time of DuckDB).
    """

    suffix = ".parquet"

    def _setup(self, file_rows: int) -> int:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        group_rows, file_rows = _file_layout(file_rows)
        self.group_rows = group_rows
        self.schema = pa.schema(
            [(c, pa.string()) for c, _ in SELECTS[self.table]],
            metadata={
                "shukei.source": self.label,
                "shukei.table": self.table,
                "shukei.run_id": self.run_id,
            },
        )
        columns = self.schema.names
        # One parsing thread: the source's COPY and the reading loop keep the other cores
        # busy, and pyarrow's thread pool only adds hand-over costs to the blocks (measured).
        self._read = pcsv.ReadOptions(column_names=columns, use_threads=False)
        self._parse = pcsv.ParseOptions(newlines_in_values=True)
        self._convert = pcsv.ConvertOptions(
            column_types={c: pa.string() for c in columns},
            null_values=[""],  # COPY writes NULL unquoted and an empty string as ""
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )
        self._pending: Any = None  # parsed rows not yet written (less than a row group)
        self._pq: Any = None
        return file_rows

    def _consume(self, block: bytearray, rows: int) -> None:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        tbl = pcsv.read_csv(
            pa.BufferReader(pa.py_buffer(block)),
            read_options=self._read,
            parse_options=self._parse,
            convert_options=self._convert,
        ).replace_schema_metadata(self.schema.metadata)
        if tbl.num_rows != rows:
            raise RuntimeError(f"{rows} rows of {self.table} were read but {tbl.num_rows} parsed")
        pending = tbl if self._pending is None else pa.concat_tables([self._pending, tbl])
        while True:
            need = min(self.group_rows, self.file_rows - self._file_rows)
            if pending.num_rows < need:
                break
            self._write(pending.slice(0, need))
            pending = pending.slice(need)
        self._pending = pending

    def _flush(self) -> None:
        if self._pending is not None and self._pending.num_rows:
            self._write(self._pending)
        self._pending = None

    def _write(self, tbl: Any) -> None:
        """Write `tbl` as one row group of the current file; close the file when it is full."""
        import pyarrow.parquet as pq

        if not self._open:
            self._pq = pq.ParquetWriter(
                str(self._new_file()),
                self.schema,
                compression="snappy",
                # Measured: dictionaries and statistics cost a third of the writing time, and
                # the loads (DuckDB's reader, PostgreSQL's conversion) are as fast without.
                use_dictionary=False,
                write_statistics=["updated_at"],
            )
        self._pq.write_table(tbl, row_group_size=max(1, tbl.num_rows))
        self._file_rows += tbl.num_rows
        self.rows += tbl.num_rows
        if self._file_rows >= self.file_rows:
            self._close_file()

    def _close(self) -> str | None:
        writer, self._pq = self._pq, None
        writer.close()
        return None


# -- load: staged files through the normal ingest path ---------------------------------------
def load_pending(project: Any, pipeline: str, m: RunMetrics) -> dict[str, Any]:
    """Ingest every staged file not yet ingested (one batch), then mark them ingested."""
    with project.engine() as eng, eng.transaction():
        ensure_state(eng)
        todo = sa.pending(eng, pipeline)
    doc: dict[str, Any] = {"batch_id": None, "files": 0, "rows": 0, "skipped": 0}
    if not todo:
        log.info("no staged files waiting to be ingested")
        return doc
    t0 = time.perf_counter()
    with sa.local_copies([(loc, digest) for loc, _, digest in todo]) as paths:
        m.staging_read_time += time.perf_counter() - t0
        t1 = time.perf_counter()
        report = project.ingest(pipeline, [str(p) for p in paths])
        m.data_load_time += time.perf_counter() - t1
    _count_loaded(m, report)
    with project.engine() as eng, eng.transaction():
        sa.mark_ingested(eng, [loc for loc, _, _ in todo], report.batch_id, datetime.now(UTC))
    return _load_doc(report)


def _entity_rows(report: Any) -> dict[str, int]:
    """Rows an ingest report loaded, per entity that had files."""
    rows: dict[str, int] = {}
    for f in report.files:
        ent = str(f["entity"])
        rows[ent] = rows.get(ent, 0) + int(f["rows"])
    return rows


def _count_loaded(m: RunMetrics, report: Any) -> None:
    """Add an ingest report's rows to RecordsLoaded."""
    for ent, n in _entity_rows(report).items():
        m.records_loaded[ent] = m.records_loaded.get(ent, 0) + n


def _load_doc(report: Any) -> dict[str, Any]:
    """The document of one ingested batch of staged files (`load_pending`, `sync`)."""
    rows = _entity_rows(report)
    return {
        "batch_id": report.batch_id,
        "files": len(report.files),
        "rows": report.rows,
        "skipped": len(report.skipped),
        "entities": {t: rows.get(t, 0) for t in TABLES},
    }


def prune(project: Any, es: ExtractSettings, pipeline: str) -> list[str]:
    with project.engine() as eng, eng.transaction():
        ensure_state(eng)
        return sa.prune(eng, pipeline, es.retention_days, datetime.now(UTC))


def store_metrics(project: Any, m: RunMetrics) -> None:
    with project.engine() as eng, eng.transaction():
        metrics_mod.store(eng, m, datetime.now(UTC))


def sync(
    project: Any,
    es: ExtractSettings,
    *,
    pipeline: str = "sales",
    since: date | None = None,
    until: date | None = None,
    scrub: Scrubber | None = None,
    run_metrics: RunMetrics | None = None,
) -> dict[str, Any]:
    """Extract (through the end of the previous day by default), ingest, run."""
    scrub = scrub or Scrubber()
    if since is None and until is None:
        tz = ZoneInfo(project.settings.timezone)
        until = datetime.now(tz).date() - timedelta(days=1)
    m = run_metrics or RunMetrics(new_run_id(), pipeline)
    # Files staged by earlier extracts and not ingested yet go first, as their own batch.
    earlier = load_pending(project, pipeline, m)
    # From a local staging area each file is ingested as soon as it is staged, while the
    # source is still being read; the batch commits with the extract run.
    overlap = not sa.is_remote(es.staging_area) and project.pipeline(pipeline).gate is None
    ext = extract(
        project,
        es,
        pipeline=pipeline,
        since=since,
        until=until,
        scrub=scrub,
        run_metrics=m,
        load=overlap,
    )
    load = _load_doc(ext.ingested) if overlap else load_pending(project, pipeline, m)
    if earlier["batch_id"] is not None:
        load["earlier"] = earlier
    store_metrics(project, m)
    rep = project.run(pipeline)
    ext.pruned = prune(project, es, pipeline)
    doc = {
        "run_id": m.run_id,
        "status": "success" if rep.status == "success" else "failed",
        "extract": ext.as_dict(),
        "ingest": load,
        "run": rep.as_dict(),
        "metrics": m.as_dict(),
    }
    if rep.status != "success":
        doc["error"] = f"run {rep.run_id}: {len(rep.failed)} date(s) failed: " + "; ".join(
            f"{d}: {e}" for d, e in sorted(rep.failed.items())
        )
    return doc
