"""The staging area: where extracted rows wait as Parquet files until they are ingested.

Layout: `<root>/etl-data/YYYY-MM-DD/<table>-<run id>-<part>.parquet`, the date being the day of
the extract (business timezone). `<root>` is a local folder or a URL fsspec understands
(`s3://bucket/prefix`; s3fs reads the usual AWS settings, and `FSSPEC_S3_ENDPOINT_URL` points it
at an S3-compatible server).

A local file is written under a hidden temporary name, flushed to disk and renamed (then the folder
is flushed), so a staged file is either complete or absent; a remote file is written locally and
uploaded in one PUT, then its size is checked. Every staged file is tracked in the warehouse
(`shukei.extract_files`, with its SHA-256); retention deletes only files older than
`retention_days` that were ingested (marked by `sync`, or whose content is in `shukei.files`,
e.g. after a manual `shukei ingest sales etl-data/`): a file not yet ingested is never deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from shukei.engines.base import Engine
from shukei.errors import InputError
from shukei.ingest.files import sha256_of

log = logging.getLogger("shukei.extract")

FOLDER = "etl-data"


@dataclass(frozen=True)
class StagedFile:
    location: str  # absolute local path or remote URL (never credentials)
    table: str
    day: str
    name: str
    rows: int
    size: int
    sha256: str


def is_remote(root: str) -> bool:
    return "://" in root and not root.startswith("file://")


def _local(root: str) -> Path:
    return Path(root[len("file://") :] if root.startswith("file://") else root).resolve()


def _fs(location: str) -> Any:
    import fsspec  # type: ignore[import-untyped, unused-ignore]

    fs, _ = fsspec.core.url_to_fs(location)
    return fs


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class StagingArea:
    """A local folder or a remote (fsspec) location holding `etl-data/`."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/") or "/"
        self.remote = is_remote(self.root)
        self._tmp: Path | None = None
        if not self.remote:
            self.base = _local(self.root) / FOLDER
        else:
            self.base = Path()  # unused
            try:
                _fs(self.root)
            except ImportError as exc:
                raise InputError(
                    f"staging area {self.root}: its file system needs a package that is not "
                    f"installed ({exc.name}; for s3:// install s3fs)"
                ) from None
            except ValueError as exc:
                raise InputError(f"staging area {self.root}: {exc}") from None

    @property
    def display(self) -> str:
        return self.root if self.remote else str(self.base)

    def location(self, day: str, name: str) -> str:
        if self.remote:
            return f"{self.root}/{FOLDER}/{day}/{name}"
        return str(self.base / day / name)

    def temp_path(self, day: str, name: str) -> Path:
        """Where to write a file before `publish` (hidden, so no ingest ever picks it up)."""
        if self.remote:
            if self._tmp is None:
                self._tmp = Path(tempfile.mkdtemp(prefix="shukei-stage-"))
            return self._tmp / f".{name}.part"
        folder = self.base / day
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f".{name}.part"

    def publish(
        self, tmp: Path, table: str, day: str, name: str, rows: int, sha256: str | None = None
    ) -> StagedFile:
        """Make a fully written temp file a staged file, durably. Returns what was staged.

        `sha256`: the file's digest when the writer computed it on the way (else it is read)."""
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        size = tmp.stat().st_size
        digest = sha256 or sha256_of(tmp)
        loc = self.location(day, name)
        if self.remote:
            fs = _fs(loc)
            fs.put_file(str(tmp), loc)
            remote_size = int(fs.info(loc)["size"])
            if remote_size != size:
                raise OSError(f"upload of {loc} is incomplete ({remote_size} of {size} bytes)")
            tmp.unlink(missing_ok=True)
        else:
            os.replace(tmp, loc)
            _fsync_dir(Path(loc).parent)
        return StagedFile(loc, table, day, name, rows, size, digest)

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def delete(location: str) -> None:
    """Remove one staged file (missing is fine)."""
    if is_remote(location):
        fs = _fs(location)
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(location)
        return
    path = Path(location)
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # drop the day folder once it is empty
        path.parent.rmdir()


@contextlib.contextmanager
def local_copies(files: Sequence[tuple[str, str]]) -> Iterator[list[Path]]:
    """Local paths of staged files (location, sha256), each verified complete by its SHA-256.

    Remote files are downloaded into a temporary `etl-data/<day>/` folder kept for the block.
    """
    tmp: Path | None = None
    out: list[Path] = []
    try:
        for loc, digest in files:
            if is_remote(loc):
                if tmp is None:
                    tmp = Path(tempfile.mkdtemp(prefix="shukei-fetch-"))
                day, name = loc.rsplit("/", 2)[-2:]
                local = tmp / FOLDER / day / name
                local.parent.mkdir(parents=True, exist_ok=True)
                _fs(loc).get_file(loc, str(local))
            else:
                local = Path(loc)
                if not local.is_file():
                    raise InputError(f"staged file {loc} is missing")
            if sha256_of(local) != digest:
                raise InputError(f"staged file {loc} does not match what was staged (SHA-256)")
            out.append(local)
        yield out
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


# -- tracking in the warehouse ---------------------------------------------------------------
def ensure_table(engine: Engine) -> None:
    engine.execute("CREATE SCHEMA IF NOT EXISTS shukei")
    engine.execute(
        "CREATE TABLE IF NOT EXISTS shukei.extract_files (location VARCHAR PRIMARY KEY, "
        "run_id VARCHAR NOT NULL, pipeline VARCHAR NOT NULL, source VARCHAR NOT NULL, "
        "table_name VARCHAR NOT NULL, staged_at TIMESTAMPTZ NOT NULL, rows_out BIGINT, "
        "size_bytes BIGINT, sha256 VARCHAR NOT NULL, ingested_at TIMESTAMPTZ, batch_id BIGINT, "
        "pruned_at TIMESTAMPTZ)"
    )


def record(
    engine: Engine,
    files: Sequence[StagedFile],
    *,
    run_id: str,
    pipeline: str,
    source: str,
    staged_at: datetime,
) -> None:
    engine.insert_rows(
        "shukei.extract_files (location, run_id, pipeline, source, table_name, staged_at, "
        "rows_out, size_bytes, sha256)",
        [
            (f.location, run_id, pipeline, source, f.table, staged_at, f.rows, f.size, f.sha256)
            for f in files
        ],
    )


def pending(engine: Engine, pipeline: str) -> list[tuple[str, str, str]]:
    """(location, table, sha256) of staged files not yet ingested, oldest first."""
    rows = engine.fetchall(
        "SELECT location, table_name, sha256 FROM shukei.extract_files WHERE pipeline = ? "
        "AND ingested_at IS NULL AND pruned_at IS NULL ORDER BY staged_at, location",
        (pipeline,),
    )
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def mark_ingested(
    engine: Engine, locations: Sequence[str], batch_id: int | None, at: datetime
) -> None:
    for i in range(0, len(locations), 200):
        part = list(locations[i : i + 200])
        marks = ", ".join("?" for _ in part)
        engine.execute(
            f"UPDATE shukei.extract_files SET ingested_at = ?, batch_id = ? "
            f"WHERE location IN ({marks})",
            [at, batch_id, *part],
        )


def prune(engine: Engine, pipeline: str, retention_days: float, now: datetime) -> list[str]:
    """Delete ingested staged files older than the retention; returns their locations."""
    cutoff = now - timedelta(days=retention_days)
    ingested = "f.ingested_at IS NOT NULL"
    if engine.table_exists("shukei", "files"):
        # Content ingested by any route (a manual `shukei ingest` of the folder too).
        ingested += " OR f.sha256 IN (SELECT sha256 FROM shukei.files WHERE pipeline = f.pipeline)"
    rows = engine.fetchall(
        f"SELECT f.location FROM shukei.extract_files f WHERE f.pipeline = ? "
        f"AND f.pruned_at IS NULL AND f.staged_at < ? AND ({ingested}) ORDER BY f.location",
        (pipeline, cutoff),
    )
    done: list[str] = []
    for (loc,) in rows:
        try:
            delete(str(loc))
        except OSError as exc:
            log.warning("retention: cannot delete %s: %s", loc, exc)
            continue
        done.append(str(loc))
    for i in range(0, len(done), 200):
        part = done[i : i + 200]
        marks = ", ".join("?" for _ in part)
        engine.execute(
            f"UPDATE shukei.extract_files SET pruned_at = ? WHERE location IN ({marks})",
            [now, *part],
        )
    if done:
        log.info(
            "retention: deleted %d ingested staged file(s) older than %g day(s)",
            len(done),
            retention_days,
        )
    return done
