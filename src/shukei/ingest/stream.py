"""One batch loaded file by file, while its later files are still being written.

`ingest` loads a batch whose files all exist. Extraction writes its files one after another, and
loading each one as soon as it is staged keeps the warehouse busy while the source is still
being read (`shukei sync`). A worker thread loads the files in the order they are added. Where
the engine takes rows as a stream (`Engine.raw_stream`: PostgreSQL's COPY), a file's rows are
fed to it while the file is being written, as the CSV text the file is made from, so nothing is
read back. All of it happens inside the caller's transaction, so the batch still commits whole
or not at all, together with whatever the caller records beside it (the extract run and its
watermarks). The caller must not use the engine until `finish` or `abort` returns.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shukei.engines.base import Engine, RawFile
from shukei.ingest.raw import IngestReport, known_content, next_batch_id, record_batch
from shukei.pipeline.definition import Pipeline
from shukei.sql import qualified
from shukei.staging.tables import ensure_tables

log = logging.getLogger("shukei.ingest")


@dataclass(frozen=True)
class StreamedFile:
    path: str
    entity: str
    fmt: str  # parquet | csv
    sha256: str = ""  # known once the file is complete


# (what, files, done event, CSV rows) on the worker's queue; None stops it.
_Item = tuple[str, list[StreamedFile], threading.Event | None, bytes | bytearray]


class StreamedBatch:
    """Load files into raw as they come: `feed` rows, `add` files, `drop` some, then `finish`."""

    QUEUED = 4  # items (blocks of rows, files) waiting for the loading thread at most

    def __init__(self, engine: Engine, pipeline: Pipeline, now: datetime) -> None:
        self.engine, self.pipeline, self.now = engine, pipeline, now
        self.streams = engine.STREAMS_RAW
        with engine.transaction():  # DDL, if any, in a short transaction of its own
            ensure_tables(engine, pipeline)
            for name in pipeline.input_entities:
                engine.prepare_raw(("raw", name))
        # The caller's work and this batch share one transaction, opened here and ended by
        # `commit` or `abort` (a context manager entered and left by hand).
        self._tx = engine.transaction()
        self._tx.__enter__()
        self._open = True
        try:
            self.batch_id = next_batch_id(engine, pipeline)
            self._known = known_content(engine, pipeline)
        except BaseException:
            self._end(failed=True)
            raise
        self.report = IngestReport(pipeline.name, self.batch_id)
        self.busy = 0.0  # seconds spent loading
        self._loaded: dict[str, tuple[StreamedFile, int]] = {}
        self._fed: dict[str, int] = {}  # rows streamed in, per file not added yet
        self._stream: tuple[str, Any] | None = None  # (path, the engine's open stream)
        self._unwanted: list[StreamedFile] = []  # fed, then found to hold known content
        self._error: BaseException | None = None
        # Bounded: rows fed wait here at most a few blocks deep, however slow the warehouse.
        self._q: queue.Queue[_Item | None] = queue.Queue(maxsize=self.QUEUED)
        self._thread = threading.Thread(target=self._work, name="load", daemon=True)
        self._thread.start()

    def feed(self, f: StreamedFile, rows: bytes | bytearray) -> None:
        """Rows (CSV, no header, the entity's columns in order) of a file being written; only
        when `streams`. The file is then `add`ed once it is complete. Raises the loading's
        error, if any, so the extraction stops."""
        self._put(("feed", [f], None, rows))

    def add(self, f: StreamedFile) -> None:
        self._put(("add", [f], None, b""))

    def drop(self, files: Sequence[StreamedFile]) -> None:
        """Take back the rows of files fed or added before (their extraction is retried);
        returns once done, so the files may then be deleted."""
        done = threading.Event()
        self._put(("drop", list(files), done, b""), check=False)
        while not done.wait(0.5):
            if not self._thread.is_alive():
                raise RuntimeError("the loading thread stopped")

    def _put(self, item: _Item, check: bool = True) -> None:
        while True:
            if check and self._error is not None:
                raise self._error
            if not self._thread.is_alive():
                raise RuntimeError("the loading thread stopped")
            try:
                self._q.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def finish(self) -> IngestReport:
        """Wait for every load, then record the batch and its files (not committed yet)."""
        self._stop()
        if self._error is None and (self._fed or self._stream is not None):
            self._error = RuntimeError(f"rows were fed for files never added: {list(self._fed)}")
        if self._error is not None:
            self._close_stream()
            raise self._error
        for f in self._unwanted:
            self._delete(f)
        rows = []
        for f, n in self._loaded.values():
            rows.append((self.pipeline.name, self.batch_id, f.entity, f.path, f.sha256, n))
            self.report.files.append({"path": f.path, "entity": f.entity, "rows": n})
        for name in self.pipeline.input_entities:
            counts = [n for f, n in self._loaded.values() if f.entity == name]
            if counts:
                log.info("ingested %d %s file(s): %d rows", len(counts), name, sum(counts))
        if rows:
            skipped = len(self.report.skipped)
            record_batch(self.engine, self.pipeline, self.batch_id, self.now, rows, skipped)
        else:
            self.report.batch_id = None
        return self.report

    def commit(self) -> None:
        """Commit the transaction: this batch and what the caller wrote beside it."""
        self._end(failed=False)

    def abort(self) -> None:
        """Stop loading and roll the transaction back (the caller's writes too)."""
        if self._thread.is_alive():
            self._error = self._error or RuntimeError("aborted")
            self._stop()
        self._end(failed=True)

    def _end(self, failed: bool) -> None:
        if not self._open:
            return
        self._open = False
        if failed:
            stop = RuntimeError("the batch was abandoned")
            self._tx.__exit__(RuntimeError, stop, None)  # rolls back; does not raise
        else:
            self._tx.__exit__(None, None, None)

    def _stop(self) -> None:
        self._q.put(None)
        self._thread.join()

    def _work(self) -> None:
        while (item := self._q.get()) is not None:
            what, files, done, rows = item
            t = time.perf_counter()
            try:
                if self._error is not None:
                    pass  # drain: the batch is lost anyway
                elif what == "feed":
                    self._feed(files[0], rows)
                elif what == "add":
                    self._add(files[0])
                else:
                    self._drop(files)
            except BaseException as exc:
                self._error = exc
            finally:
                self.busy += time.perf_counter() - t
                if done is not None:
                    done.set()
        if self._error is not None:
            self._close_stream()

    def _close_stream(self) -> None:
        """After a failure: a COPY left open would keep the connection busy (its rows are
        rolled back with the batch)."""
        if self._stream is None:
            return
        path, stream = self._stream
        self._stream = None
        try:
            stream.close()
        except Exception as exc:  # the batch already failed; this is only the cleanup
            log.debug("closing the stream of %s after a failure: %s", path, exc)

    def _feed(self, f: StreamedFile, rows: bytes | bytearray) -> None:
        if self._stream is not None and self._stream[0] != f.path:
            self._end_stream()
        if self._stream is None:
            if f.path in self._fed:  # its numbering would start again from 1
                raise RuntimeError(f"the rows of {f.path} were not fed in one piece")
            columns = self.pipeline.entities[f.entity].column_names
            stream = self.engine.raw_stream(
                ("raw", f.entity), f.path, columns, (self.batch_id, self.now)
            )
            self._stream = (f.path, stream)
        self._stream[1].write(rows)

    def _end_stream(self) -> None:
        assert self._stream is not None
        path, stream = self._stream
        self._stream = None
        self._fed[path] = self._fed.get(path, 0) + stream.close()

    def _add(self, f: StreamedFile) -> None:
        if self._stream is not None and self._stream[0] == f.path:
            self._end_stream()
        if f.path in self._fed:  # its rows are in already
            n = self._fed.pop(f.path)
            if f.sha256 in self._known:
                # Taken out again once no COPY is open (a later file's may be, right now).
                self._unwanted.append(f)
                self._skip(f)
                return
        elif f.sha256 in self._known:
            self._skip(f)
            return
        else:
            if self._stream is not None:
                self._end_stream()
            columns = self.pipeline.entities[f.entity].column_names
            header = columns if f.fmt == "csv" else ()  # written by shukei, the contract's order
            counts = self.engine.load_raw(
                ("raw", f.entity),
                [RawFile(f.path, f.fmt, columns, header)],
                (self.batch_id, self.now),
            )
            n = counts.get(f.path, 0)
        self._known.add(f.sha256)
        self._loaded[f.path] = (f, n)
        log.debug("ingested %s (%s): %d rows", f.path, f.entity, n)

    def _skip(self, f: StreamedFile) -> None:
        self.report.skipped.append(f.path)
        log.info("skipped %s: this content was ingested before", f.path)

    def _drop(self, files: list[StreamedFile]) -> None:
        if self._stream is not None:
            # The open COPY is the attempt's last file (the rows come in order); no other
            # statement can run while it is open.
            self._end_stream()
        for f in files:
            loaded = self._loaded.pop(f.path, None)
            if loaded is not None:
                self._known.discard(loaded[0].sha256)
            unwanted = [u for u in self._unwanted if u.path == f.path]
            if unwanted:  # its rows are still in: take them out now, not in `finish`, as the
                # retry reuses the path
                self._unwanted = [u for u in self._unwanted if u.path != f.path]
                self.report.skipped = [p for p in self.report.skipped if p != f.path]
            fed = self._fed.pop(f.path, None) is not None
            if loaded is not None or fed or unwanted:
                self._delete(f)

    def _delete(self, f: StreamedFile) -> None:
        self.engine.execute(
            f"DELETE FROM {qualified('raw', f.entity)} WHERE _batch_id = ? AND _source_file = ?",
            (self.batch_id, f.path),
        )
