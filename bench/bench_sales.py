"""Benchmark: shukei against its engine's own limit, measured in the same run.

    python bench/bench_sales.py                       # DuckDB, 1M order lines
    python bench/bench_sales.py --lines 1000000 --lines 10000000
    python bench/bench_sales.py --engine postgresql   # needs a PostgreSQL server (SHUKEI_BENCH_PG)

For each size it generates a year of data, then measures (each phase in its own child process, so
peak memory is that phase's own):
- ingest rows/s against the engine's native bulk read of the same files (DuckDB `read_csv` into a
  table; PostgreSQL `COPY ... FROM STDIN`),
- the full-year `run` against one hand-written statement computing daily_sales for the year from
  the same raw rows,
- the `run` after a late batch (about 5,000 lines + 300 corrections) as a share of the full run
  (the median of three runs from the same state: copies of the warehouse),
- a run with nothing to do right after it (the floor every run pays),
- that daily_sales equals the hand-written statement's result (wrong rows, should be 0).
Results go to bench/out/results.json and are printed as a Markdown table.
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
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
START = date(2025, 1, 1)
DAYS = 365
LINES_PER_ORDER = 2.63  # the generator's mean lines per order (measured)
LATE_RUNS = 3  # late runs from the same state; the median is reported

# The single hand-written statement, written independently of shukei's code: the same rules
# (NFKC + trim, strict numbers, naive timestamps in Asia/Tokyo, the latest valid version per key,
# counted orders with at least one valid line), straight from the raw text, for every date at once.
# `nfkc` is a vectorised pyarrow UDF registered by the benchmark.
HAND_DAILY_SALES = r"""
WITH ro AS (
    SELECT trim(nfkc(order_id)) AS order_id, lower(trim(nfkc(status))) AS status,
           trim(nfkc(created_at)) AS c, trim(nfkc(updated_at)) AS u, _batch_id, _source_file, _row_no
    FROM raw.orders),
o AS (
    SELECT order_id, status,
           CASE WHEN NOT regexp_full_match(c, '[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)?)?') THEN NULL
                WHEN regexp_matches(c, '[T ][0-9:.]+(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$')
                THEN TRY_CAST(c AS TIMESTAMPTZ)
                ELSE timezone('Asia/Tokyo', TRY_CAST(c AS TIMESTAMP)) END AS created,
           CASE WHEN NOT regexp_full_match(u, '[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)?)?') THEN NULL
                WHEN regexp_matches(u, '[T ][0-9:.]+(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$')
                THEN TRY_CAST(u AS TIMESTAMPTZ)
                ELSE timezone('Asia/Tokyo', TRY_CAST(u AS TIMESTAMP)) END AS updated,
           _batch_id, _source_file, _row_no
    FROM ro WHERE order_id <> ''),
ol AS (
    SELECT * FROM o WHERE created IS NOT NULL AND updated IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY order_id
        ORDER BY updated DESC, _batch_id DESC, _source_file DESC, _row_no DESC) = 1),
ri AS (
    SELECT trim(nfkc(order_id)) AS order_id, trim(nfkc(line_no)) AS l, trim(nfkc(quantity)) AS q,
           trim(nfkc(unit_price)) AS p, trim(nfkc(updated_at)) AS u, _batch_id, _source_file,
           _row_no
    FROM raw.order_items),
i AS (
    SELECT order_id,
           CASE WHEN regexp_full_match(q, '[+-]?[0-9]+') THEN TRY_CAST(q AS BIGINT) END AS quantity,
           CASE WHEN regexp_full_match(p, '[+-]?[0-9]{1,16}(\.[0-9]{1,2})?')
                THEN TRY_CAST(p AS DECIMAL(18,2)) END AS unit_price,
           CASE WHEN regexp_full_match(l, '[+-]?[0-9]+') THEN TRY_CAST(l AS BIGINT) END AS line_no,
           CASE WHEN NOT regexp_full_match(u, '[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)?)?') THEN NULL
                WHEN regexp_matches(u, '[T ][0-9:.]+(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$')
                THEN TRY_CAST(u AS TIMESTAMPTZ)
                ELSE timezone('Asia/Tokyo', TRY_CAST(u AS TIMESTAMP)) END AS updated,
           _batch_id, _source_file, _row_no
    FROM ri WHERE order_id <> ''),
il AS (
    SELECT * FROM i
    WHERE line_no IS NOT NULL AND quantity >= 1 AND unit_price >= 0 AND updated IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY order_id, line_no
        ORDER BY updated DESC, _batch_id DESC, _source_file DESC, _row_no DESC) = 1),
f AS (
    SELECT CAST(timezone('Asia/Tokyo', ol.created) AS DATE) AS sales_date, ol.order_id,
           sum(il.quantity) AS items, sum(il.quantity * il.unit_price) AS revenue
    FROM ol JOIN il USING (order_id)
    WHERE ol.status IS NULL OR ol.status = '' OR ol.status NOT IN ('cancelled', 'refunded')
    GROUP BY 1, 2)
SELECT sales_date, count(*) AS order_count, sum(items) AS item_count, sum(revenue) AS revenue
FROM f GROUP BY 1
"""


# The same statement for PostgreSQL (15 has no TRY_CAST: the benchmark defines its own safe casts).
PG_HELPERS = """
CREATE OR REPLACE FUNCTION public.b_ts(v text, tz text) RETURNS timestamptz LANGUAGE plpgsql
IMMUTABLE AS $$ BEGIN
  -- ISO 8601 only (no 'yesterday'), offsets within +-14:59
  IF v !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?(Z|z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)?)?$' THEN RETURN NULL; END IF;
  IF v ~ '[T ][0-9:.]+(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$' THEN RETURN v::timestamptz; END IF;
  RETURN v::timestamp AT TIME ZONE tz;
EXCEPTION WHEN others THEN RETURN NULL; END $$;
"""
HAND_DAILY_SALES_PG = r"""
WITH o AS (
    SELECT btrim(normalize(order_id, NFKC)) AS order_id,
           lower(btrim(normalize(status, NFKC))) AS status,
           public.b_ts(btrim(normalize(created_at, NFKC)), 'Asia/Tokyo') AS created,
           public.b_ts(btrim(normalize(updated_at, NFKC)), 'Asia/Tokyo') AS updated,
           _batch_id, _source_file, _row_no
    FROM raw.orders),
ol AS (
    SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY order_id
        ORDER BY updated DESC, _batch_id DESC, _source_file DESC, _row_no DESC) AS rn
        FROM o WHERE order_id <> '' AND created IS NOT NULL AND updated IS NOT NULL) q
    WHERE rn = 1),
ri AS (
    SELECT btrim(normalize(order_id, NFKC)) AS order_id, btrim(normalize(line_no, NFKC)) AS l,
           btrim(normalize(quantity, NFKC)) AS q, btrim(normalize(unit_price, NFKC)) AS p,
           public.b_ts(btrim(normalize(updated_at, NFKC)), 'Asia/Tokyo') AS updated,
           _batch_id, _source_file, _row_no
    FROM raw.order_items),
i AS (
    SELECT order_id, updated, _batch_id, _source_file, _row_no,
           CASE WHEN q ~ '^[+-]?[0-9]{1,18}$' THEN q::bigint END AS quantity,
           CASE WHEN p ~ '^[+-]?[0-9]{1,16}(\.[0-9]{1,2})?$' THEN p::numeric(18,2) END AS unit_price,
           CASE WHEN l ~ '^[+-]?[0-9]{1,18}$' THEN l::bigint END AS line_no
    FROM ri WHERE order_id <> ''),
il AS (
    SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY order_id, line_no
        ORDER BY updated DESC, _batch_id DESC, _source_file DESC, _row_no DESC) AS rn
        FROM i WHERE line_no IS NOT NULL AND quantity >= 1 AND unit_price >= 0
          AND updated IS NOT NULL) q
    WHERE rn = 1),
f AS (
    SELECT (ol.created AT TIME ZONE 'Asia/Tokyo')::date AS sales_date, ol.order_id,
           sum(il.quantity) AS items, sum(il.quantity * il.unit_price) AS revenue
    FROM ol JOIN il USING (order_id)
    WHERE ol.status IS NULL OR ol.status = '' OR ol.status NOT IN ('cancelled', 'refunded')
    GROUP BY 1, 2)
SELECT sales_date, count(*) AS order_count, sum(items) AS item_count, sum(revenue) AS revenue
FROM f GROUP BY 1
"""


def child(code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `code` in a fresh interpreter; return its JSON result plus wall time and peak RSS."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        text=True,
    )
    out, _ = proc.communicate()
    wall = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"benchmark step failed:\n{code}")
    res = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    res.setdefault("seconds", wall)
    return res


def timed(code: str) -> str:
    """Wrap a snippet so it prints its own timing and peak RSS (ru_maxrss of itself)."""
    return (
        "import json, resource, time\n"
        "t0 = time.perf_counter()\n"
        f"{code}\n"
        "print(json.dumps({'seconds': time.perf_counter() - t0, "
        "'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
        "**globals().get('extra', {})}))\n"
    )


def bench_size(lines: int, engine: str, pg_admin: str | None) -> dict[str, Any]:
    work = OUT / f"{engine}-{lines}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data, late = work / "data", work / "late"
    opd = max(1, round(lines / DAYS / LINES_PER_ORDER))
    gen = child(
        timed(
            "from datetime import date\nfrom pathlib import Path\n"
            "from shukei.generate.sales import generate_sales, generate_late_batch\n"
            f"s = generate_sales(Path({str(data)!r}), start=date(2025, 1, 1), days={DAYS}, "
            f"orders_per_day={opd}, seed=7)\n"
            f"lb = generate_late_batch(Path({str(late)!r}), start=date(2025, 1, 1), days={DAYS}, "
            f"orders_per_day={opd}, seed=7, batch_seed=3, lines=5000, corrections=300)\n"
            "extra = {'rows': s.rows, 'late_rows': lb.rows}"
        )
    )
    res: dict[str, Any] = {
        "engine": engine,
        "target_lines": lines,
        "orders_per_day": opd,
        "generated": gen,
    }
    if engine == "duckdb":
        url = f"duckdb:///{work / 'shukei.duckdb'}"
        native = child(
            timed(
                "import duckdb, glob\n"
                f"c = duckdb.connect({str(work / 'native.duckdb')!r})\n"
                "n = 0\n"
                "for e in ('customers', 'products', 'orders', 'order_items'):\n"
                f"    files = sorted(glob.glob({str(data)!r} + f'/*/{{e}}_*.csv'))\n"
                "    c.execute(f'CREATE TABLE {e} AS SELECT * FROM read_csv(?, all_varchar=true)', [files])\n"
                "    n += c.execute(f'SELECT count(*) FROM {e}').fetchone()[0]\n"
                "c.close()\nextra = {'rows': n}"
            )
        )
    else:
        assert pg_admin is not None
        url = _pg_create(pg_admin, "shukei_bench_" + uuid.uuid4().hex[:8])
        native_url = _pg_create(pg_admin, "shukei_bench_native_" + uuid.uuid4().hex[:8])
        native = child(
            timed(
                "import psycopg, glob\n"
                f"c = psycopg.connect({native_url!r}, autocommit=True)\n"
                "cols = {'customers': 'customer_id,name,email,region,updated_at', 'products': "
                "'product_id,name,category,updated_at', 'orders': 'order_id,customer_id,status,region,"
                "created_at,updated_at', 'order_items': 'order_id,line_no,product_id,quantity,"
                "unit_price,updated_at'}\n"
                "n = 0\n"
                "for e, cl in cols.items():\n"
                "    c.execute(f'CREATE TABLE {e} (' + ', '.join(x + ' text' for x in cl.split(',')) + ')')\n"
                f"    for f in sorted(glob.glob({str(data)!r} + f'/*/{{e}}_*.csv')):\n"
                "        with c.cursor() as cur, cur.copy(f'COPY {e} FROM STDIN (FORMAT csv, HEADER true)') as cp, open(f, 'rb') as fh:\n"
                "            while chunk := fh.read(1 << 20):\n"
                "                cp.write(chunk)\n"
                "    n += c.execute(f'SELECT count(*) FROM {e}').fetchone()[0]\n"
                "extra = {'rows': n}"
            )
        )
    proj = f"from shukei.project import Project\np = Project(warehouse={url!r}, lock_timeout=60)\n"
    ingest = child(
        timed(proj + f"r = p.ingest('sales', [{str(data)!r}])\nextra = {{'rows': r.rows}}")
    )
    full = child(timed(proj + "r = p.run('sales')\nextra = {'dates': len(r.built)}"))
    hand = child(timed(_hand_code(engine, url)))
    wrong_full = _wrong_rows(engine, url)
    late_ingest = child(
        timed(proj + f"r = p.ingest('sales', [{str(late)!r}])\nextra = {{'rows': r.rows}}")
    )
    # The late run is short and noisy: it runs LATE_RUNS times from the same state (copies of
    # the warehouse as the late ingest left it), and the median counts. The last run is on the
    # warehouse itself, which the wrong-rows check then reads.
    run_code = "r = p.run('sales')\nextra = {'dates': len(r.built)}"
    late_runs = []
    for i in range(LATE_RUNS - 1):
        copy_url = _copy_warehouse(engine, url, pg_admin, work, i)
        os.sync()  # the copy written out first: its write-back would slow the run down
        late_runs.append(
            child(
                timed(
                    f"from shukei.project import Project\n"
                    f"p = Project(warehouse={copy_url!r}, lock_timeout=60)\n{run_code}"
                )
            )
        )
        _drop_warehouse(engine, copy_url, pg_admin)
    late_runs.append(child(timed(proj + run_code)))
    late_run = sorted(late_runs, key=lambda r: r["seconds"])[len(late_runs) // 2]
    wrong_late = _wrong_rows(engine, url)
    # The floor of any run: the same command with nothing pending and no date dirty (imports,
    # opening the warehouse, planning, the run's own records, closing).
    idle_run = child(timed(proj + run_code))
    if idle_run["dates"]:
        raise SystemExit(f"the run after the late run rebuilt {idle_run['dates']} date(s), not 0")
    res.update(
        {
            "native_load": native,
            "ingest": ingest,
            "full_run": full,
            "hand_statement": hand,
            "late_ingest": late_ingest,
            "late_run": late_run,
            "late_run_seconds": [r["seconds"] for r in late_runs],
            "idle_run": idle_run,
            "wrong_rows_after_full": wrong_full,
            "wrong_rows_after_late": wrong_late,
            "ingest_vs_native": native["seconds"] / ingest["seconds"],
            "full_vs_hand": full["seconds"] / hand["seconds"],
            "late_share": late_run["seconds"] / full["seconds"],
            "idle_share": idle_run["seconds"] / full["seconds"],
        }
    )
    help_times = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "shukei", "--help"], capture_output=True, check=True)
        help_times.append(time.perf_counter() - t)
    res["help_seconds"] = min(help_times)
    if engine == "duckdb":
        shutil.rmtree(data, ignore_errors=True)
    else:  # the benchmark's databases do not outlive it
        assert pg_admin is not None
        for db_url in (url, native_url):
            _pg_drop(pg_admin, db_url.rsplit("/", 1)[1])
    return res


def _hand_code(engine: str, url: str) -> str:
    if engine == "duckdb":
        path = url.split(":///", 1)[1]
        return (
            "import duckdb, pyarrow.compute as pc\n"
            f"c = duckdb.connect({path!r})\n"
            "c.create_function('nfkc', lambda a: pc.utf8_normalize(a, 'NFKC'), ['VARCHAR'], "
            "'VARCHAR', type='arrow')\n"
            f"c.execute('CREATE OR REPLACE TABLE main.hand_daily_sales AS ' + {HAND_DAILY_SALES!r})\n"
            "c.close()"
        )
    return (
        "import psycopg\n"
        f"c = psycopg.connect({url!r}, autocommit=True)\n"
        f"c.execute({PG_HELPERS!r})\n"
        "c.execute('DROP TABLE IF EXISTS public.hand_daily_sales')\n"
        f"c.execute('CREATE TABLE public.hand_daily_sales AS ' + {HAND_DAILY_SALES_PG!r})\n"
    )


def _wrong_rows(engine: str, url: str) -> int:
    """daily_sales rows that differ from the hand-written statement's (either direction)."""
    cols = "sales_date, order_count, item_count, revenue"
    sql = (
        f"SELECT count(*) FROM ((SELECT {cols} FROM marts.daily_sales EXCEPT SELECT {cols} FROM "
        f"{{h}}) UNION ALL (SELECT {cols} FROM {{h}} EXCEPT SELECT {cols} FROM marts.daily_sales)) x"
    )
    if engine == "duckdb":
        import duckdb

        child(timed(_hand_code(engine, url)))
        con = duckdb.connect(url.split(":///", 1)[1], read_only=True)
        try:
            return int(con.execute(sql.format(h="main.hand_daily_sales")).fetchone()[0])
        finally:
            con.close()
    import psycopg

    child(timed(_hand_code(engine, url)))
    with psycopg.connect(url) as con:
        return int(con.execute(sql.format(h="public.hand_daily_sales")).fetchone()[0])


def _pg_create(admin: str, name: str, template: str | None = None) -> str:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return admin.rsplit("/", 1)[0] + "/" + name


def _copy_warehouse(engine: str, url: str, pg_admin: str | None, work: Path, i: int) -> str:
    """A copy of the (closed) warehouse at `url`, for one more late run from the same state."""
    if engine == "duckdb":
        src = Path(url.split(":///", 1)[1])
        dst = work / f"late-copy-{i}.duckdb"
        for suffix in ("", ".wal"):
            if Path(str(src) + suffix).exists():
                shutil.copy(str(src) + suffix, str(dst) + suffix)
        return f"duckdb:///{dst}"
    assert pg_admin is not None
    return _pg_create(pg_admin, f"{url.rsplit('/', 1)[1]}_late{i}", template=url.rsplit("/", 1)[1])


def _drop_warehouse(engine: str, url: str, pg_admin: str | None) -> None:
    if engine == "duckdb":
        path = url.split(":///", 1)[1]
        for suffix in ("", ".wal"):
            Path(path + suffix).unlink(missing_ok=True)
        shutil.rmtree(path + ".tmp", ignore_errors=True)
    else:
        assert pg_admin is not None
        _pg_drop(pg_admin, url.rsplit("/", 1)[1])


def _pg_drop(admin: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        ("order lines (generated)", lambda r: f"{r['generated']['rows']['order_items']:,}"),
        (
            "ingest rows/s (shukei)",
            lambda r: f"{r['ingest']['rows'] / r['ingest']['seconds']:,.0f}",
        ),
        (
            "native load rows/s",
            lambda r: f"{r['native_load']['rows'] / r['native_load']['seconds']:,.0f}",
        ),
        (
            "ingest vs native (target >= 0.7x DuckDB, 0.6x PG)",
            lambda r: f"{r['ingest_vs_native']:.2f}x",
        ),
        ("full-year run s", lambda r: f"{r['full_run']['seconds']:.2f}"),
        ("hand-written statement s", lambda r: f"{r['hand_statement']['seconds']:.2f}"),
        ("full run / statement (target <= 3x)", lambda r: f"{r['full_vs_hand']:.2f}x"),
        (
            f"late batch run s (median of {LATE_RUNS})",
            lambda r: f"{r['late_run']['seconds']:.2f}",
        ),
        ("late run / full run (target < 5%)", lambda r: f"{100 * r['late_share']:.1f}%"),
        ("dates rebuilt by the late run", lambda r: str(r["late_run"]["dates"])),
        (
            "run with nothing to do s (the floor of every run)",
            lambda r: f"{r['idle_run']['seconds']:.2f} = {100 * r['idle_share']:.1f}%",
        ),
        (
            "peak RSS of the full run MB (target < 2048)",
            lambda r: f"{r['full_run']['rss_mb']:,.0f}",
        ),
        (
            "wrong daily_sales rows (full / late)",
            lambda r: f"{r['wrong_rows_after_full']} / {r['wrong_rows_after_late']}",
        ),
        ("`shukei --help` s (target < 0.3)", lambda r: f"{r['help_seconds']:.3f}"),
    ]
    head = (
        "| measure | " + " | ".join(f"{r['engine']} {r['target_lines']:,}" for r in results) + " |"
    )
    sep = "|---|" + "---:|" * len(results)
    body = ["| " + name + " | " + " | ".join(f(r) for r in results) + " |" for name, f in rows]
    return "\n".join([head, sep, *body])


def compile_bytecode() -> None:
    """Compile shukei's modules as a wheel install does, so every command loads bytecode.

    An editable install compiles on first import, unless PYTHONDONTWRITEBYTECODE is set (as on
    some CI machines): then every measured command would compile shukei's sources again first
    (25-60 ms, measured), a cost no installed copy pays.
    """
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("shukei")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        compileall.compile_dir(folder, quiet=1)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--lines", type=int, action="append", help="order lines per year (repeatable)")
    ap.add_argument("--engine", choices=["duckdb", "postgresql"], default="duckdb")
    args = ap.parse_args()
    compile_bytecode()
    pg_admin = os.environ.get("SHUKEI_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    results = [bench_size(n, args.engine, pg_admin) for n in (args.lines or [1_000_000])]
    OUT.mkdir(exist_ok=True)
    (OUT / f"results-{args.engine}.json").write_text(json.dumps(results, indent=2, default=str))
    print(table(results))


if __name__ == "__main__":
    main()
