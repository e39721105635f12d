"""Engines by URL scheme, with "did you mean ...?" on a typo."""

from __future__ import annotations

import difflib
from typing import Any

from shukei.engines.base import Engine
from shukei.errors import ConfigError
from shukei.settings import redact_url

SCHEMES = {
    "duckdb": "shukei.engines.duckdb:DuckDBEngine",
    "postgresql": "shukei.engines.postgres:PostgresEngine",
    "postgres": "shukei.engines.postgres:PostgresEngine",
}


def connect(url: str, **options: Any) -> Engine:
    """Open the warehouse named by `url` (e.g. duckdb:///shukei.duckdb)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in SCHEMES:
        close = difflib.get_close_matches(scheme, list(SCHEMES), n=1)
        hint = f" (did you mean {close[0]}://?)" if close else ""
        raise ConfigError(
            f"unsupported warehouse URL {redact_url(url)!r}{hint}; supported: "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    import importlib

    module, cls = SCHEMES[scheme].split(":")
    engine_cls = getattr(importlib.import_module(module), cls)
    if options.get("read_only") and not engine_cls.CONCURRENT_READERS:
        options["read_only"] = False  # one process at a time: a reader waits like a writer
    if scheme == "duckdb":
        options.pop("password_file", None)
    else:
        options.pop("memory_limit", None)
    engine: Engine = engine_cls(url, **options)
    return engine
