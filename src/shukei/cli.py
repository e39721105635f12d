"""The `shukei` command: a thin layer over `shukei.Project`; errors are caught once, here.

Exit codes: 0 success, 1 a failed run or bad data, 2 a usage error. An error is one `Error:` line;
the traceback only with -v.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

import click

from shukei.cli_options import parse_date
from shukei.errors import RunFailed, ShukeiError
from shukei.extract.cli import register as register_extract


class Ctx:
    def __init__(self, overrides: dict[str, Any], verbose: bool) -> None:
        self.overrides = overrides
        self.verbose = verbose
        self._project: Any = None

    @property
    def project(self) -> Any:
        if self._project is None:
            from shukei import logs
            from shukei.project import Project

            self._project = Project(**self.overrides)
            s = self._project.settings
            logs.setup(s.log_format, s.log_file, self.verbose)
        return self._project


def _echo_json(doc: Any) -> None:
    from shukei.project import to_json

    click.echo(to_json(doc))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--warehouse",
    envvar="SHUKEI_WAREHOUSE",
    help="Warehouse URL (default duckdb:///shukei.duckdb).",
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default=None, help="Log line format."
)
@click.option(
    "--log-file", type=click.Path(path_type=Path), default=None, help="Also log to this file."
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logs, and tracebacks on errors.")
@click.version_option(package_name="shukei")
@click.pass_context
def cli(
    ctx: click.Context,
    warehouse: str | None,
    log_format: str | None,
    log_file: Path | None,
    verbose: bool,
) -> None:
    """shukei (集計): re-runnable daily marts from late, dirty, corrected data.

    Settings come from options, then SHUKEI_* environment variables, then ./shukei.toml.
    """
    ctx.obj = Ctx({"warehouse": warehouse, "log_format": log_format, "log_file": log_file}, verbose)


pass_ctx = click.make_pass_decorator(Ctx)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")(
        f
    )


@cli.command()
@pass_ctx
@json_option
def pipelines(c: Ctx, as_json: bool) -> None:
    """List the built-in pipelines and those under pipeline_paths."""
    from shukei.pipeline.definition import builtin_names, load_pipeline

    names = builtin_names()
    docs = []
    for n in names:
        p = load_pipeline(n)
        docs.append(
            {
                "name": p.name,
                "description": p.description,
                "path": str(p.root),
                "entities": list(p.entities),
                "marts": [m.name for m in p.marts],
            }
        )
    if as_json:
        _echo_json(docs)
        return
    for d in docs:
        click.echo(
            f"{d['name']}: {d['description']}\n  entities: {', '.join(d['entities'])}\n"
            f"  marts: {', '.join(d['marts'])}"
        )


@cli.command("init-db")
@click.argument("pipelines", nargs=-1)
@json_option
@pass_ctx
def init_db(c: Ctx, pipelines: tuple[str, ...], as_json: bool) -> None:
    """Create the warehouse's schemas and state tables (idempotent; `run` does it too)."""
    from shukei.settings import redact_url

    doc = c.project.init_db(list(pipelines))
    if as_json:
        _echo_json(doc)
        return
    click.echo(
        f"warehouse {redact_url(c.project.settings.warehouse)} ready: state schema version "
        f"{doc['schema_version']}, pipelines {', '.join(doc['pipelines'])}"
    )


@cli.group()
def generate() -> None:
    """Write realistic, reproducible sample input data."""


@generate.command("sales")
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--start", required=True, callback=parse_date, help="First business date (YYYY-MM-DD)."
)
@click.option("--days", type=click.IntRange(1, 3660), default=14, show_default=True)
@click.option("--orders-per-day", type=click.IntRange(1), default=500, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--late-rate", type=click.FloatRange(0, 1), default=0.02, show_default=True)
@click.option("--correction-rate", type=click.FloatRange(0, 1), default=0.02, show_default=True)
@click.option("--dirty-rate", type=click.FloatRange(0, 1), default=0.01, show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet", "jsonl"]),
    default="csv",
    show_default=True,
)
@click.option(
    "--late-batch",
    is_flag=True,
    help="Write one late delivery (new lines + corrections) for this data set instead.",
)
@click.option("--batch-seed", type=int, default=1, show_default=True, help="With --late-batch.")
@click.option("--lines", type=int, default=5000, show_default=True, help="With --late-batch.")
@click.option("--corrections", type=int, default=300, show_default=True, help="With --late-batch.")
def generate_sales_cmd(
    out: Path,
    start: date,
    days: int,
    orders_per_day: int,
    seed: int,
    late_rate: float,
    correction_rate: float,
    dirty_rate: float,
    fmt: str,
    late_batch: bool,
    batch_seed: int,
    lines: int,
    corrections: int,
) -> None:
    """Sales data in date-partitioned folders: OUT/YYYY-MM-DD/<entity>_....csv"""
    from shukei.generate.sales import generate_late_batch, generate_sales

    if late_batch:
        s = generate_late_batch(
            out,
            start=start,
            days=days,
            orders_per_day=orders_per_day,
            seed=seed,
            batch_seed=batch_seed,
            lines=lines,
            corrections=corrections,
            fmt=fmt,
        )
    else:
        s = generate_sales(
            out,
            start=start,
            days=days,
            orders_per_day=orders_per_day,
            seed=seed,
            late_rate=late_rate,
            correction_rate=correction_rate,
            dirty_rate=dirty_rate,
            fmt=fmt,
        )
    rows = ", ".join(f"{k} {v:,}" for k, v in s.rows.items())
    click.echo(f"wrote {s.files} files to {s.out}: {rows}")


@generate.command("events")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--start", required=True, callback=parse_date, help="First event date (YYYY-MM-DD).")
@click.option("--days", type=click.IntRange(1, 3660), default=7, show_default=True)
@click.option("--users", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--sessions-per-user-day", type=click.FloatRange(0), default=0.3, show_default=True)
@click.option("--late-rate", type=click.FloatRange(0, 1), default=0.01, show_default=True)
@click.option("--duplicate-rate", type=click.FloatRange(0, 1), default=0.005, show_default=True)
@click.option("--invalid-rate", type=click.FloatRange(0, 0.1), default=0.005, show_default=True)
@click.option("--gzip", "gz", is_flag=True, help="Write .jsonl.gz files.")
def generate_events_cmd(
    out: Path,
    start: date,
    days: int,
    users: int,
    seed: int,
    sessions_per_user_day: float,
    late_rate: float,
    duplicate_rate: float,
    invalid_rate: float,
    gz: bool,
) -> None:
    """Behaviour events in date-partitioned folders: OUT/YYYY-MM-DD/events_....jsonl"""
    from shukei.generate.events import generate_events

    s = generate_events(
        out,
        start=start,
        days=days,
        users=users,
        seed=seed,
        sessions_per_user_day=sessions_per_user_day,
        late_rate=late_rate,
        duplicate_rate=duplicate_rate,
        invalid_rate=invalid_rate,
        gzip=gz,
    )
    invalid = sum(s.invalid.values())
    click.echo(
        f"wrote {s.files} files to {s.out}: {s.events:,} events ({invalid:,} invalid, "
        f"{s.duplicates:,} duplicates, {s.late:,} late)"
    )


@cli.command()
@click.argument("pipeline")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--entity", default=None, help="Entity of every file given (else from file names).")
@json_option
@pass_ctx
def ingest(
    c: Ctx, pipeline: str, inputs: tuple[str, ...], entity: str | None, as_json: bool
) -> None:
    """Load files or folders (CSV, Parquet, JSONL) into the raw layer, as one batch."""
    from shukei.errors import GateBlocked

    progress = None if as_json else _progress_bar("reading files")
    try:
        rep = c.project.ingest(pipeline, list(inputs), entity, progress=progress)
    except GateBlocked as blocked:
        if as_json and blocked.report is not None:
            _echo_json(blocked.report.as_dict())  # type: ignore[attr-defined]
        raise
    finally:
        if progress is not None:
            progress.close()
    if as_json:
        _echo_json(rep.as_dict())
        return
    if rep.batch_id is None:
        click.echo(f"nothing new: {len(rep.skipped)} file(s) were ingested before (same content)")
        return
    if rep.gate is not None:
        click.echo(rep.gate.summary())
    click.echo(
        f"batch {rep.batch_id}: {len(rep.files)} file(s), {rep.rows:,} rows into raw"
        + (f"; skipped {len(rep.skipped)} already-ingested file(s)" if rep.skipped else "")
    )


@cli.command()
@click.argument("pipeline")
@click.option(
    "--date",
    "dates",
    multiple=True,
    callback=parse_date,
    help="Force a rebuild of this date (repeatable).",
)
@click.option(
    "--start-date", callback=parse_date, default=None, help="Force a rebuild from this date..."
)
@click.option("--end-date", callback=parse_date, default=None, help="...through this date.")
@click.option(
    "--full-refresh", is_flag=True, help="Re-derive every partition and rebuild every date."
)
@json_option
@pass_ctx
def run(
    c: Ctx,
    pipeline: str,
    dates: tuple[date, ...],
    start_date: date | None,
    end_date: date | None,
    full_refresh: bool,
    as_json: bool,
) -> None:
    """Rebuild every missing or stale date (or the dates asked for), atomically per date."""
    project = c.project
    progress = None if as_json else _progress_bar("rebuilding dates")
    try:
        rep = project.run(
            pipeline, list(dates) or None, start_date, end_date, full_refresh, progress=progress
        )
    finally:
        if progress is not None:
            progress.close()
    if as_json:
        _echo_json(rep.as_dict())
    else:
        _print_run(rep)
    if rep.status != "success":
        raise RunFailed(
            f"run {rep.run_id}: {len(rep.failed)} date(s) failed: "
            + "; ".join(f"{d}: {e}" for d, e in sorted(rep.failed.items()))
        )


class _Bar:
    """A rich progress bar on stderr, only when it is a terminal."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if total < 2:
            return
        if self._progress is None:
            from rich.progress import Progress

            self._progress = Progress(transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self._label, total=total)
        self._progress.update(self._task, completed=done)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _progress_bar(label: str) -> _Bar | None:
    return _Bar(label) if sys.stderr.isatty() else None


def _print_run(rep: Any) -> None:
    doc = rep.as_dict()
    for b in doc["batches"]:
        for ent, cnt in b["entities"].items():
            click.echo(
                f"batch {b['batch_id']} {ent}: {cnt['rows_in']:,} in = {cnt['rows_used']:,} used + "
                f"{cnt['rows_superseded']:,} superseded + {cnt['rows_duplicate']:,} duplicate + "
                f"{cnt['rows_quarantined']:,} quarantined"
            )
    by_reason: dict[str, int] = {}
    for r in doc["reasons"].values():
        by_reason[r] = by_reason.get(r, 0) + 1
    detail = ", ".join(f"{n} {r}" for r, n in sorted(by_reason.items()))
    click.echo(
        f"run {doc['run_id']}: {doc['status']}, {len(doc['dates'])} date(s) rebuilt"
        + (f" ({detail})" if detail else "")
        + f" in {doc['seconds']:.2f}s"
    )
    if len(doc["dates"]) <= 20:
        for part in doc["partitions"]:
            click.echo(f"  {part['date']}  {part['reason']:<9} {part['status']}")
    for f in doc["failed"]:
        click.echo(f"  FAILED {f['date']}: {f['error']}")
    for ch in doc["checks"]:
        click.echo(
            f"  check {ch['check']} ({ch['status']}): {ch['failed_rows']} row(s) in {ch['scope']}"
        )


@cli.command()
@click.argument("pipeline")
@click.option("--limit", type=int, default=10, show_default=True, help="Runs and batches to show.")
@json_option
@pass_ctx
def status(c: Ctx, pipeline: str, limit: int, as_json: bool) -> None:
    """Partitions and their state, pending work, row counts per batch, and the last runs."""
    doc = c.project.status(pipeline, limit)
    if as_json:
        _echo_json(doc)
        return
    pt = doc["partitions"]
    click.echo(
        f"pipeline {doc['pipeline']}: {pt['built']} date(s) built"
        + (f" ({pt['first']} .. {pt['last']})" if pt["first"] else "")
    )
    click.echo(
        f"  dirty (to rebuild): {len(pt['dirty'])}"
        + (
            f" [{', '.join(str(d) for d in pt['dirty'][:10])}"
            f"{' ...' if len(pt['dirty']) > 10 else ''}]"
            if pt["dirty"]
            else ""
        )
    )
    click.echo(f"  pending batches (not yet merged): {doc['pending_batches']}")
    for f in pt["failed"]:
        click.echo(f"  FAILED {f['date']}: {f['error']}")
    if doc["batches"]:
        click.echo("batches (rows in = used + superseded + duplicate + quarantined):")
        for b in doc["batches"]:
            if b["entity"] is None:
                click.echo(f"  {b['batch_id']:>4} {b['status']:<7} (not merged yet)")
            else:
                click.echo(
                    f"  {b['batch_id']:>4} {b['entity']:<12} {b['rows_in']:>9,} = "
                    f"{b['rows_used']:,} + {b['rows_superseded']:,} + "
                    f"{b['rows_duplicate']:,} + {b['rows_quarantined']:,}"
                )
    if doc["runs"]:
        click.echo("last runs:")
        for r in doc["runs"]:
            click.echo(
                f"  {r['run_id']}  {r['status']:<11} planned {r['dates_planned'] or 0:>4}  "
                f"built {r['dates_built'] or 0:>4}  failed {r['dates_failed'] or 0}"
            )


@cli.command()
@click.argument("pipeline")
@click.option("--run", "run_id", default=None, help="A run id (default: the last run).")
@json_option
@pass_ctx
def diff(c: Ctx, pipeline: str, run_id: str | None, as_json: bool) -> None:
    """What a run changed, per date and mart, with totals before -> after."""
    doc = c.project.diff(pipeline, run_id)
    if as_json:
        _echo_json(doc)
        return
    click.echo(f"run {doc['run_id']} ({doc['status']}): {len(doc['changes'])} mart partition(s)")
    for ch in doc["changes"]:
        totals = ", ".join(
            f"{k} {_num(ch['totals_before'].get(k))} -> {_num(v)}"
            for k, v in ch["totals_after"].items()
        )
        click.echo(
            f"  {ch['partition']:<10} {ch['mart']:<22} +{ch['added']} -{ch['removed']} "
            f"~{ch['changed']} rows ({ch['rows_before']} -> {ch['rows_after']})"
            + (f"  {totals}" if totals else "")
        )


def _num(v: Any) -> str:
    if v is None:
        return "-"
    try:
        from decimal import Decimal

        d = Decimal(str(v))
        return f"{d:,}"
    except Exception:
        return str(v)


@cli.command()
@click.argument("pipeline")
@click.option("--run", "run_id", default=None, help="Only this run's results.")
@json_option
@pass_ctx
def check(c: Ctx, pipeline: str, run_id: str | None, as_json: bool) -> None:
    """Quality check results per run and batch (failed first)."""
    doc = c.project.checks(pipeline, run_id)
    if as_json:
        _echo_json(doc)
        return
    rows = doc["results"]
    if not rows:
        click.echo("no check results yet: run `shukei run " + pipeline + "`")
        return
    for r in sorted(rows, key=lambda r: r["status"] == "pass"):
        where = f"batch {r['batch_id']}" if r["batch_id"] is not None else r["scope"]
        click.echo(
            f"  {r['status']:<4} {r['check']:<34} {r['failed_rows']:>6} row(s)  {where}"
            + ("" if r["blocking"] else "  (warning)")
        )
    failing = [r for r in rows if r["status"] != "pass"]
    if failing:
        click.echo("offending rows of the first failure: " + failing[0]["query"])


@cli.command()
@click.argument("pipeline")
@click.option("--limit", type=int, default=20, show_default=True, help="Batches to show.")
@json_option
@pass_ctx
def quality(c: Ctx, pipeline: str, limit: int, as_json: bool) -> None:
    """The quality gate's history: every check's result per batch, and its trend."""
    doc = c.project.quality(pipeline, limit)
    if as_json:
        _echo_json(doc)
        return
    if not doc["batches"]:
        click.echo(f"no gated batches yet for {pipeline}")
        return
    click.echo("trend per check (latest pass rate, mean over the batches shown):")
    arrows = {"up": "↑", "down": "↓", "flat": "→"}
    for t in doc["trend"]:
        click.echo(
            f"  {t['check']:<20} {100 * t['latest']:7.2f}%  mean {100 * t['mean']:7.2f}%  "
            f"{arrows[t['trend']]}"
        )
    click.echo("batches (newest first):")
    for r in doc["batches"]:
        if r["check"] == "*":
            click.echo(
                f"  batch {r['batch_id']:>4} {r['batch_status']:<8} {r['checked']:>9,} rows, "
                f"{r['failed']:,} failed, pass rate {100 * r['pass_rate']:.2f}% "
                f"(threshold {100 * r['threshold']:.2f}%)"
            )


@cli.command()
@click.argument("pipeline")
def schema(pipeline: str) -> None:
    """Print the pipeline's input contract as a JSON Schema (draft-07)."""
    from shukei.errors import UsageError
    from shukei.pipeline.definition import load_pipeline

    p = load_pipeline(pipeline)
    if p.schema_file is None:
        raise UsageError(f"pipeline {p.name!r} ships no JSON Schema")
    click.echo(p.schema_file.read_text(encoding="utf-8"), nl=False)


register_extract(cli)


def main(argv: list[str] | None = None) -> NoReturn:
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="shukei", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except ShukeiError as exc:
        if verbose:
            traceback.print_exc()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Error: interrupted", err=True)
        sys.exit(1)
    except Exception as exc:  # a bug: still one line, unless -v
        if verbose:
            traceback.print_exc()
        click.echo(
            f"Error: internal error ({type(exc).__name__}: {exc}); rerun with -v for details",
            err=True,
        )
        sys.exit(1)
    sys.exit(0)
