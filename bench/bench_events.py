"""Benchmark: the events gate (seven checks in the engine) + load, against a plain read.

    python bench/bench_events.py [--events 1000000]

Generates about N events, then measures in the same run, each phase in its own process:
- `shukei ingest events` (type, run the seven gate checks, load raw + quarantine) in rows/s,
- a plain DuckDB `read_json` of the same files into a table (target: ingest >= 0.3x of it),
- the `run events` that builds the four marts from them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
EVENTS_PER_USER_DAY = (
    1.33  # events per user and day the generator yields (measured: 2.6 gave 0.51x)
)


def child(code: str) -> dict[str, Any]:
    wrapped = (
        "import json, resource, time\nt0 = time.perf_counter()\n" + code + "\n"
        "print(json.dumps({'seconds': time.perf_counter() - t0, 'rss_mb': "
        "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **globals().get('extra', {})}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapped], capture_output=True, text=True, env=os.environ.copy()
    )
    if out.returncode:
        raise SystemExit(f"benchmark step failed:\n{code}\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=1_000_000)
    args = ap.parse_args()
    work = OUT / f"events-{args.events}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    days = 7
    users = max(100, round(args.events / days / EVENTS_PER_USER_DAY))
    data = work / "data"
    gen = child(
        "from datetime import date\nfrom pathlib import Path\n"
        "from shukei.generate.events import generate_events\n"
        f"s = generate_events(Path({str(data)!r}), start=date(2025, 12, 1), days={days}, "
        f"users={users}, seed=7)\nextra = {{'events': s.events}}"
    )
    native = child(
        "import duckdb, glob\n"
        f"c = duckdb.connect({str(work / 'native.duckdb')!r})\n"
        f"files = sorted(glob.glob({str(data)!r} + '/*/events_*.jsonl'))\n"
        "c.execute(\"CREATE TABLE e AS SELECT * FROM read_json(?, format='newline_delimited')\", [files])\n"
        "extra = {'rows': c.execute('SELECT count(*) FROM e').fetchone()[0]}"
    )
    url = f"duckdb:///{work / 'shukei.duckdb'}"
    proj = f"from shukei.project import Project\np = Project(warehouse={url!r})\n"
    ingest = child(
        proj + f"r = p.ingest('events', [{str(data)!r}])\n"
        "extra = {'rows': r.gate.rows, 'failed': r.gate.failed, 'pass_rate': r.gate.pass_rate}"
    )
    run = child(proj + "r = p.run('events')\nextra = {'dates': len(r.built)}")
    res = {
        "generated": gen,
        "native_read_json": native,
        "ingest": ingest,
        "run": run,
        "ingest_vs_native": native["seconds"] / ingest["seconds"],
    }
    (OUT / "results-events.json").write_text(json.dumps(res, indent=2))
    rows = [
        ("events generated", f"{gen['events']:,} in {gen['seconds']:.1f}s"),
        ("gate + load rows/s (shukei ingest)", f"{ingest['rows'] / ingest['seconds']:,.0f}"),
        ("plain read_json rows/s", f"{native['rows'] / native['seconds']:,.0f}"),
        ("ingest vs plain read (target >= 0.3x)", f"{res['ingest_vs_native']:.2f}x"),
        ("gate pass rate", f"{100 * ingest['pass_rate']:.2f}% ({ingest['failed']:,} quarantined)"),
        ("run (4 marts, all dates) s", f"{run['seconds']:.2f} ({run['dates']} dates)"),
        ("peak RSS ingest / run MB", f"{ingest['rss_mb']:,.0f} / {run['rss_mb']:,.0f}"),
    ]
    print("| measure | value |\n|---|---:|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows))
    shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
