"""The one place identifiers become SQL text.

Identifiers come only from pipeline definitions and are validated there; values never pass through
here: they are always bound parameters.
"""

from __future__ import annotations

import re

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_identifier(name: str) -> bool:
    """True when `name` is a plain identifier a pipeline definition may use."""
    return bool(_IDENT.match(name))


def quote(name: str) -> str:
    """Quote one identifier (a table, column or schema name) for DuckDB and PostgreSQL alike."""
    if not name or "\x00" in name:
        raise ValueError(f"invalid identifier {name!r}")
    return '"' + name.replace('"', '""') + '"'


def qualified(*parts: str) -> str:
    """Quote a dotted name: `qualified("marts", "daily_sales")` -> `"marts"."daily_sales"`."""
    return ".".join(quote(p) for p in parts)


def column_list(names: list[str] | tuple[str, ...], prefix: str = "") -> str:
    """A comma-separated, quoted column list, optionally qualified by a table alias."""
    p = f"{prefix}." if prefix else ""
    return ", ".join(p + quote(n) for n in names)


def constant(text: str) -> str:
    """A string literal for text shukei itself composes: a core constant (a regular expression, a
    JSON path) or words built from validated identifiers. Never for a user's value: values are
    bound parameters."""
    if "\x00" in text:
        raise ValueError("a SQL constant cannot hold NUL")
    return "'" + text.replace("'", "''") + "'"
