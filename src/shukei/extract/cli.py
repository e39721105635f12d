"""`shukei source init`, `shukei extract PIPELINE` and `shukei sync PIPELINE`.

The main CLI adds them with `register(cli)`. Commands receive the main CLI's context object
(`shukei.cli.Ctx`: its `.project` carries the warehouse settings) and raise `ShukeiError`s, which
the main entry point prints as one `Error:` line with the error's exit code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import click

from shukei.cli_options import parse_date


def _echo_json(doc: Any, scrub: Callable[[str], str]) -> None:
    click.echo(scrub(json.dumps(doc, ensure_ascii=False, default=str)))


def _project(obj: Any) -> Any:
    if obj is None or not hasattr(obj, "project"):
        raise click.UsageError("run through the shukei command (no context object)")
    return obj.project  # also sets up logging from the settings


def _window_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(
        [
            click.option("--source", default=None, help="Source URL (else SHUKEI_SOURCE)."),
            click.option(
                "--since", callback=parse_date, default=None, help="Window start date (YYYY-MM-DD)."
            ),
            click.option(
                "--until",
                callback=parse_date,
                default=None,
                help="Window end date, inclusive (alone: cap an incremental extract).",
            ),
            click.option(
                "--staging",
                default=None,
                help="Staging area: folder or s3:// URL holding etl-data/ (else "
                "SHUKEI_STAGING_AREA, default .).",
            ),
            click.option(
                "--metrics-file",
                type=click.Path(path_type=Path),
                default=None,
                help="Write the run's metrics here (Prometheus text format, atomic).",
            ),
            click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
        ]
    ):
        f = opt(f)
    return f


@click.group("source")
def source_group() -> None:
    """The operational source database (a demo initializer)."""


@source_group.command("init")
@click.argument("url", required=False)
@click.option("--orders-per-day", type=click.IntRange(1), default=500, show_default=True)
@click.option("--days", type=click.IntRange(1, 3660), default=30, show_default=True)
@click.option(
    "--start", callback=parse_date, default=None, help="First business date (default: DAYS ago)."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def source_init(
    obj: Any,
    url: str | None,
    orders_per_day: int,
    days: int,
    start: date | None,
    seed: int,
    as_json: bool,
) -> None:
    """Create the shop's operational tables (idempotent) and fill them with generated data.

    URL defaults to SHUKEI_SOURCE; the password comes from source_password_file, secret_arn or
    libpq (PGPASSFILE), never from the command line.
    """
    from shukei.errors import UsageError
    from shukei.extract.secrets import Scrubber, resolve_credentials
    from shukei.extract.settings import load_extract_settings
    from shukei.extract.source_db import init_source

    _project(obj)
    es = load_extract_settings(source=url)
    if not es.source:
        raise UsageError("give the source URL (or set SHUKEI_SOURCE)")
    scrub = Scrubber()
    scrub.add_url(es.source)
    creds = resolve_credentials(
        password_file=es.source_password_file, secret_arn=es.secret_arn, scrub=scrub
    )
    rep = init_source(
        es.source, creds, scrub, orders_per_day=orders_per_day, days=days, start=start, seed=seed
    )
    if as_json:
        _echo_json(rep.as_dict(), scrub)
        return
    click.echo(
        f"source {rep.source} ready ({rep.start} + {rep.days} day(s)): "
        + ", ".join(f"{t} {rep.rows[t]:,} (+{rep.inserted[t]:,} new)" for t in rep.rows)
    )


def _settings(source: str | None, staging: str | None) -> Any:
    from shukei.extract.settings import load_extract_settings

    return load_extract_settings(source=source, staging_area=staging)


def _finish(m: Any, metrics_file: Path | None) -> None:
    if m.status == "running":  # refused before it started (a usage error): nothing to report
        return
    m.log_line()
    if metrics_file is not None:
        from shukei.extract.metrics import write_textfile

        write_textfile(metrics_file, m)


@click.command("extract")
@click.argument("pipeline")
@_window_options
@click.pass_obj
def extract_cmd(
    obj: Any,
    pipeline: str,
    source: str | None,
    since: date | None,
    until: date | None,
    staging: str | None,
    metrics_file: Path | None,
    as_json: bool,
) -> None:
    """Stage new and changed source rows as Parquet (or re-extract --since..--until)."""
    from shukei.extract.extract import extract, new_run_id, prune
    from shukei.extract.metrics import RunMetrics
    from shukei.extract.secrets import Scrubber

    project = _project(obj)
    es = _settings(source, staging)
    scrub = Scrubber()
    m = RunMetrics(new_run_id(), pipeline)
    try:
        rep = extract(
            project, es, pipeline=pipeline, since=since, until=until, scrub=scrub, run_metrics=m
        )
        rep.pruned = prune(project, es, pipeline)
    finally:
        _finish(m, metrics_file)
    if as_json:
        _echo_json(rep.as_dict(), scrub)
        return
    click.echo(scrub(rep.summary()))
    for t, r in rep.tables.items():
        after = rep.watermarks_after.get(t)
        click.echo(f"  {t:<12} {r.rows:>10,} rows  watermark {after.isoformat() if after else '-'}")
    if rep.pruned:
        click.echo(f"  retention: deleted {len(rep.pruned)} ingested staged file(s)")


@click.command("sync")
@click.argument("pipeline")
@_window_options
@click.pass_obj
def sync_cmd(
    obj: Any,
    pipeline: str,
    source: str | None,
    since: date | None,
    until: date | None,
    staging: str | None,
    metrics_file: Path | None,
    as_json: bool,
) -> None:
    """Extract (through the previous day by default), ingest the staged files, run."""
    from shukei.errors import RunFailed
    from shukei.extract.extract import new_run_id, sync
    from shukei.extract.metrics import RunMetrics
    from shukei.extract.secrets import Scrubber

    project = _project(obj)
    es = _settings(source, staging)
    scrub = Scrubber()
    m = RunMetrics(new_run_id(), pipeline)
    try:
        doc = sync(
            project, es, pipeline=pipeline, since=since, until=until, scrub=scrub, run_metrics=m
        )
        if doc["status"] != "success":
            m.status = "failed"
    finally:
        _finish(m, metrics_file)
    if as_json:
        _echo_json(doc, scrub)
    else:
        ext, load, run = doc["extract"], doc["ingest"], doc["run"]
        click.echo(
            scrub(
                f"sync {doc['run_id']}: extracted {ext['rows']:,} row(s) in {ext['files']} "
                f"file(s); ingested {load['rows']:,} row(s) (batch {load['batch_id']}); "
                f"run {run['run_id']}: {run['status']}, {len(run['dates'])} date(s) rebuilt"
            )
        )
    if doc["status"] != "success":
        raise RunFailed(doc.get("error") or "the run failed")


def register(cli_group: click.Group) -> None:
    """Add `source`, `extract` and `sync` to the main CLI group (idempotent)."""
    for cmd in (source_group, extract_cmd, sync_cmd):
        if cmd.name not in cli_group.commands:
            cli_group.add_command(cmd)
