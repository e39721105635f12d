"""Logging: text or JSON lines to stderr and optionally a file, always with run id and date."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)
_date: contextvars.ContextVar[str | None] = contextvars.ContextVar("date", default=None)


@contextlib.contextmanager
def context(run_id: str | None = None, date: str | None = None) -> Iterator[None]:
    """Attach a run id and/or a partition date to every log record emitted inside the block."""
    tokens = []
    if run_id is not None:
        tokens.append((_run_id, _run_id.set(run_id)))
    if date is not None:
        tokens.append((_date, _date.set(date)))
    try:
        yield
    finally:
        for var, tok in reversed(tokens):
            var.reset(tok)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = _run_id.get()
        record.date = _date.get()
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ctx = "".join(
            f" {k}={v}"
            for k, v in (
                ("run", getattr(record, "run_id", None)),
                ("date", getattr(record, "date", None)),
            )
            if v
        )
        return f"{ts} {record.levelname:<7} {record.name}{ctx}: {record.getMessage()}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "run_id": getattr(record, "run_id", None),
            "date": getattr(record, "date", None),
            "message": record.getMessage(),
        }
        return json.dumps(doc, ensure_ascii=False)


def setup(fmt: str = "text", file: Path | None = None, verbose: bool = False) -> None:
    root = logging.getLogger("shukei")
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(file, encoding="utf-8"))
    for h in handlers:
        h.setFormatter(formatter)
        h.addFilter(_ContextFilter())
        root.addHandler(h)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
