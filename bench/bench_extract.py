"""Benchmark: extract + stage + ingest from an operational PostgreSQL, against COPY TO STDOUT.

    python bench/bench_extract.py                         # 1M order lines, DuckDB warehouse
    python bench/bench_extract.py --engine postgresql     # PostgreSQL warehouse
    python bench/bench_extract.py --lines 200000 --keep   # smaller; keep the databases
    python bench/bench_extract.py --engine postgresql --staging-format csv   # stage COPY CSV

Needs a PostgreSQL server (SHUKEI_BENCH_PG, default postgresql://postgres@127.0.0.1:5432/postgres).
It creates a source database filled by `source init` (30 business days, about LINES order lines
plus their orders, customers and products), vacuums and checkpoints it, then measures, each step
in its own child process:

- `COPY (SELECT ...) TO STDOUT (FORMAT csv)` of the same rows (the four tables, the extractor's
  columns), read by psycopg and thrown away: the floor for any Python client. Measured before and
  after the extract; the faster of the two is used (the stricter comparison). `psql \\copy` to
  /dev/null is shown for reference when psql is installed.
- shukei's full extract (incremental, first run: every row) into a local staging area, each
  staged file ingested as soon as it is written, in one transaction (what `sync` does, without
  its `run`), with the peak RSS of that child (ru_maxrss). That is the headline figure.
- for reference, into a second warehouse: the extract alone, then the ingest of the staged files
  (`shukei extract`, then `load_pending`, as `sync` does with files staged earlier or remotely).
- that the warehouses' raw tables hold exactly the source's rows (wrong rows, should be 0).

Results go to bench/out/results-extract-<engine>.json and are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
DAYS = 30
LINES_PER_ORDER = 2.645  # the generator's mean lines per order (measured)
ADMIN = os.environ.get("SHUKEI_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

# Written out here, independently of the extractor: the same columns it reads, as COPY text.
SELECTS = {
    "customers": "SELECT customer_id, name, email, region, updated_at FROM customers",
    "products": "SELECT product_id, name, category, updated_at FROM products",
    "orders": "SELECT order_id, customer_id, status, region, created_at, updated_at FROM orders",
    "order_items": (
        "SELECT order_id, line_no, product_id, quantity, unit_price, updated_at FROM order_items"
    ),
}


def child(code: str) -> dict[str, Any]:
    """Run `code` in a fresh interpreter; its last stdout line is a JSON result."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        raise SystemExit(f"benchmark step failed:\n{code}")
    res: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    res.setdefault("wall", time.perf_counter() - t)
    return res


def timed(code: str) -> str:
    return (
        "import json, resource, time\n"
        "t0 = time.perf_counter()\n"
        f"{code}\n"
        "print(json.dumps({'seconds': time.perf_counter() - t0, "
        "'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
        "**globals().get('extra', {})}))\n"
    )


def with_db(url: str, db: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, "/" + db, p.query, p.fragment))


def create_db(name: str) -> str:
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}"')
        con.execute(f'CREATE DATABASE "{name}"')
    return with_db(ADMIN, name)


def drop_db(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def settle(source: str) -> None:
    """After the bulk fill, leave the source as a live database is: vacuumed, analysed and
    checkpointed, so no measurement pays for hint bits or a checkpoint of the fill."""
    import psycopg

    with psycopg.connect(source, autocommit=True) as con:
        con.execute("VACUUM (ANALYZE)")
    checkpoint()


def checkpoint() -> None:
    """Write out what earlier steps left dirty, so the next measured step does not pay for it."""
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as con:
        con.execute("CHECKPOINT")


def copy_baseline(source: str) -> dict[str, Any]:
    return child(
        timed(
            "import psycopg\n"
            f"con = psycopg.connect({source!r}, autocommit=True, "
            "options='-c TimeZone=UTC -c DateStyle=ISO')\n"
            "rows = 0\nsize = 0\n"
            f"for sql in {list(SELECTS.values())!r}:\n"
            "    with con.cursor() as cur, cur.copy(f'COPY ({sql}) TO STDOUT (FORMAT csv)') as cp:\n"
            "        for row in cp:\n"
            "            rows += 1\n"
            "            size += len(row)\n"
            "extra = {'rows': rows, 'bytes': size}"
        )
    )


def psql_baseline(source: str) -> float | None:
    psql = shutil.which("psql")
    if psql is None:
        return None
    t = time.perf_counter()
    for sql in SELECTS.values():
        subprocess.run(
            [psql, "-X", "-q", "-d", source, "-c", f"\\copy ({sql}) TO '/dev/null' (FORMAT csv)"],
            check=True,
            env={**os.environ, "PGTZ": "UTC"},
        )
    return time.perf_counter() - t


def _shukei(warehouse: str, source: str, stage: Path, fmt: str, overlap: bool) -> str:
    """The child measuring shukei: `sync`'s path (`overlap`: each file ingested as soon as it is
    staged, one transaction), or the extract followed by the ingest of the staged files."""
    load = (
        "rep = extract(p, es, load=True)\n"
        "t_extract = t_load = time.perf_counter() - t\n"
        "rows_loaded = rep.ingested.rows\n"
        if overlap
        else "rep = extract(p, es)\n"
        "t_extract = time.perf_counter() - t\n"
        "t = time.perf_counter()\n"
        "rows_loaded = load_pending(p, 'sales', rep.metrics)['rows']\n"
        "t_load = time.perf_counter() - t\n"
    )
    return timed(
        "from shukei.project import Project\n"
        "from shukei.extract.extract import extract, load_pending\n"
        "from shukei.extract.settings import ExtractSettings\n"
        f"p = Project(warehouse={warehouse!r}, lock_timeout=30)\n"
        f"es = ExtractSettings(source={source!r}, staging_area={str(stage)!r}, "
        f"staging_format={fmt!r})\n"
        "t = time.perf_counter()\n"
        f"{load}"
        "extra = {'extract_seconds': t_extract, 'load_seconds': t_load, "
        "'rows': sum(r.rows for r in rep.tables.values()), 'loaded': rows_loaded, "
        "'metrics': rep.metrics.as_dict(), 'files': len(rep.files)}"
    )


def _wrong_rows(warehouse: str, source: str) -> int:
    """|rows in raw - rows in the source|, summed over the four tables (should be 0)."""
    return int(
        child(
            timed(
                "from shukei.project import Project\n"
                f"p = Project(warehouse={warehouse!r})\n"
                "import psycopg\n"
                f"src = psycopg.connect({source!r})\n"
                "wrong = 0\n"
                "with p.engine(read_only=True) as eng:\n"
                f"    for t in {list(SELECTS)!r}:\n"
                "        a = eng.scalar(f'SELECT count(*) FROM raw.{t}')\n"
                "        b = src.execute(f'SELECT count(*) FROM {t}').fetchone()[0]\n"
                "        wrong += abs(int(a) - int(b))\n"
                "extra = {'wrong_rows': wrong}"
            )
        )["wrong_rows"]
    )


def bench(lines: int, engine: str, keep: bool, fmt: str = "parquet") -> dict[str, Any]:
    work = OUT / f"extract-{engine}-{lines}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tag = uuid.uuid4().hex[:8]
    src_name = f"shukei_bench_src_{tag}"
    source = create_db(src_name)
    made: list[str] = []

    def warehouse(kind: str) -> str:
        if engine == "duckdb":
            return f"duckdb:///{work / f'wh-{kind}.duckdb'}"
        made.append(f"shukei_bench_wh_{kind}_{tag}")
        return create_db(made[-1])

    opd = max(1, round(lines / DAYS / LINES_PER_ORDER))
    try:
        init = child(
            timed(
                "from datetime import date\n"
                "from shukei.extract.secrets import Credentials, Scrubber\n"
                "from shukei.extract.source_db import init_source\n"
                f"r = init_source({source!r}, Credentials(), Scrubber(), orders_per_day={opd}, "
                f"days={DAYS}, start=date(2025, 1, 1), seed=7)\n"
                "extra = {'rows': r.rows}"
            )
        )
        settle(source)
        copy1 = copy_baseline(source)
        psql_s = psql_baseline(source)
        wh_sync, wh_after = warehouse("sync"), warehouse("after")
        checkpoint()
        run = child(_shukei(wh_sync, source, work / "stage-sync", fmt, overlap=True))
        checkpoint()
        copy2 = copy_baseline(source)
        after = child(_shukei(wh_after, source, work / "stage-after", fmt, overlap=False))
        wrong = _wrong_rows(wh_sync, source) + _wrong_rows(wh_after, source)
    finally:
        if not keep:
            drop_db(src_name)
            for name in made:
                drop_db(name)
            for kind in ("sync", "after"):
                shutil.rmtree(work / f"stage-{kind}", ignore_errors=True)
    copy_s = min(copy1["seconds"], copy2["seconds"])
    rows = run["rows"]
    assert run["loaded"] == after["loaded"] == rows, (run["loaded"], after["loaded"], rows)
    res = {
        "engine": engine,
        "staging_format": fmt,
        "target_lines": lines,
        "orders_per_day": opd,
        "source_rows": init["rows"],
        "init_seconds": init["seconds"],
        "rows": rows,
        "copy_seconds": [copy1["seconds"], copy2["seconds"]],
        "copy_rows_per_s": rows / copy_s,
        "psql_copy_seconds": psql_s,
        # sync's path: extract, stage and ingest at once
        "extract_stage_ingest_seconds": run["seconds"],
        "extract_stage_ingest_rows_per_s": rows / run["seconds"],
        "ratio_vs_copy": copy_s / run["seconds"],
        "setup_seconds": run["seconds"] - run["extract_seconds"],
        "peak_rss_mb": run["rss_mb"],
        "metrics": run["metrics"],
        "files": run["files"],
        # the extract alone, then the ingest of what it staged
        "extract_stage_seconds": after["extract_seconds"],
        "extract_stage_ratio_vs_copy": copy_s / after["extract_seconds"],
        "then_ingest_seconds": after["load_seconds"],
        "after_total_seconds": after["seconds"],
        "after_ratio_vs_copy": copy_s / after["seconds"],
        "after_peak_rss_mb": after["rss_mb"],
        "wrong_rows": wrong,
    }
    name = engine if fmt == "parquet" else f"{engine}-{fmt}"
    (OUT / f"results-extract-{name}.json").write_text(json.dumps(res, indent=2) + "\n")
    return res


def table(r: dict[str, Any]) -> str:
    m = r["metrics"]
    psql = f"{r['psql_copy_seconds']:.2f} s" if r["psql_copy_seconds"] else "-"
    lines = [
        f"Warehouse: {r['engine']}; staged as {r['staging_format']}; source: "
        f"{r['source_rows']['order_items']:,} order lines, {r['rows']:,} rows in the four tables.",
        "",
        "| measure | seconds | rows/s | vs COPY |",
        "|---|---:|---:|---:|",
        f"| COPY (SELECT ...) TO STDOUT, psycopg (best of 2) | {min(r['copy_seconds']):.2f} | "
        f"{r['copy_rows_per_s']:,.0f} | 1.00x |",
        f"| psql \\copy to /dev/null (reference) | {psql} | | |",
        f"| shukei extract + stage + ingest, files ingested as staged (sync) | "
        f"{r['extract_stage_ingest_seconds']:.2f} | {r['extract_stage_ingest_rows_per_s']:,.0f} | "
        f"**{r['ratio_vs_copy']:.2f}x** (target >= 0.4x) |",
        f"| shukei extract + stage alone ({r['staging_format']}) | "
        f"{r['extract_stage_seconds']:.2f} | | {r['extract_stage_ratio_vs_copy']:.2f}x |",
        f"| ... then ingest of the staged files | {r['then_ingest_seconds']:.2f} | | "
        f"{r['after_ratio_vs_copy']:.2f}x (both, in {r['after_total_seconds']:.2f} s) |",
        "",
        f"Peak RSS of the sync process: **{r['peak_rss_mb']:.0f} MB** (target < 1024 MB; "
        f"{r['after_peak_rss_mb']:.0f} MB staged then ingested). Metrics of the sync: "
        f"ExtractionTime {m['ExtractionTime']:.2f} s, StagingWriteTime "
        f"{m['StagingWriteTime']:.2f} s and DataLoadTime {m['DataLoadTime']:.2f} s (both overlap "
        f"the extraction), imports and setup {r['setup_seconds']:.2f} s. {r['files']} staged "
        f"file(s); wrong rows in raw: {r['wrong_rows']}.",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--engine", choices=["duckdb", "postgresql"], default="duckdb")
    ap.add_argument("--keep", action="store_true", help="keep the databases and staged files")
    ap.add_argument("--staging-format", choices=["parquet", "csv"], default="parquet")
    args = ap.parse_args()
    res = bench(args.lines, args.engine, args.keep, args.staging_format)
    print(table(res))


if __name__ == "__main__":
    main()
