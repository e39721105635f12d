"""Find input files, tell their entity and format, check their columns, fingerprint them.

Only headers and schemas are read here; the rows themselves are read by the engine.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from shukei.errors import InputError
from shukei.pipeline.definition import Pipeline

log = logging.getLogger("shukei.ingest")

FORMATS = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonl.gz": "jsonl",
    ".ndjson.gz": "jsonl",
}


@dataclass(frozen=True)
class InputFile:
    path: Path
    entity: str
    fmt: str
    sha256: str
    header: tuple[str, ...] = ()


def _fmt_of(path: Path) -> str | None:
    name = path.name.lower()
    for ext in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            return FORMATS[ext]
    return None


def expand(inputs: Iterable[str | Path]) -> list[Path]:
    """Files named, plus the input files found (recursively) in folders named; sorted, unique."""
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found.extend(
                f
                for f in sorted(p.rglob("*"))
                if f.is_file() and not f.name.startswith(".") and _fmt_of(f)
            )
        elif p.is_file():
            if _fmt_of(p) is None:
                raise InputError(
                    f"{p}: unsupported file type (use .csv, .parquet or .jsonl, optionally .gz)"
                )
            found.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    seen: set[Path] = set()
    out = []
    for f in found:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            out.append(r)
    return out


def entity_of(path: Path, pipeline: Pipeline, forced: str | None) -> str:
    if forced:
        if forced not in pipeline.input_entities:
            raise InputError(
                f"unknown entity {forced!r} for pipeline {pipeline.name!r}; "
                f"one of: {', '.join(pipeline.input_entities)}"
            )
        return forced
    name = path.name
    matches = [
        e
        for e in pipeline.input_entities
        if name.startswith(e) and (len(name) == len(e) or not (name[len(e)].isalnum()))
    ]
    if not matches:
        raise InputError(
            f"{path}: cannot tell its entity; a file name must start with one of "
            f"{', '.join(pipeline.input_entities)} (or pass --entity NAME)"
        )
    return max(matches, key=len)


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115


def check_columns(path: Path, fmt: str, expected: tuple[str, ...]) -> tuple[str, ...]:
    """Fail with one clear line when a file lacks a column of its entity; return its header."""
    if fmt == "jsonl":
        return ()  # no header: a missing field is NULL, and quarantined where it is required
    try:
        if fmt == "csv":
            with _open_text(path) as fh:
                first = fh.readline()
            if not first.strip():
                raise InputError(f"{path}: empty file (a CSV needs a header row)")
            header = next(csv.reader([first]))
            have = [h.strip() for h in header]
        else:
            import pyarrow.parquet as pq

            have = list(pq.read_schema(path).names)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: cannot read its header: {exc}") from exc
    missing = [c for c in expected if c not in have]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)} (expected {', '.join(expected)})"
        )
    extra = [c for c in have if c not in expected]
    if extra:
        log.warning("%s: column(s) %s are not in the contract; ignored", path, ", ".join(extra))
    if len(set(have)) != len(have):
        raise InputError(f"{path}: a column name appears twice in its header")
    return tuple(have)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def discover(
    inputs: Iterable[str | Path],
    pipeline: Pipeline,
    entity: str | None,
    progress: Callable[[int, int], None] | None = None,
) -> list[InputFile]:
    """Every input file with its entity, format, header and fingerprint (headers only read)."""
    from concurrent.futures import ThreadPoolExecutor

    files = []
    paths = expand(inputs)
    # Hashing reads every byte; hashlib releases the GIL, so a few threads read and hash
    # the files side by side while this loop checks their headers.
    pool = ThreadPoolExecutor(max_workers=4)
    try:
        digests = pool.map(sha256_of, paths)
        checked = []
        for i, path in enumerate(paths, start=1):
            if progress:
                progress(i, len(paths))
            fmt = _fmt_of(path)
            assert fmt is not None
            ent = entity_of(path, pipeline, entity)
            checked.append(
                (path, ent, fmt, check_columns(path, fmt, pipeline.entities[ent].column_names))
            )
        for (path, ent, fmt, header), digest in zip(checked, digests, strict=True):
            files.append(InputFile(path, ent, fmt, digest, header))
    finally:
        pool.shutdown(cancel_futures=True)  # a bad file stops the hashing of the rest
    if not files:
        raise InputError("no input files found (.csv, .parquet, .jsonl, optionally .gz)")
    return files
