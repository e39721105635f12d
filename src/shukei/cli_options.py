"""Option parsing both command modules share (`shukei.cli`, `shukei.extract.cli`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import click


def _date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


def parse_date(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A click callback: YYYY-MM-DD text (or a tuple of them, for multiple=True) as dates."""
    if isinstance(value, tuple):
        return tuple(_date(v) for v in value)
    return _date(value)
