"""The `shukei` command as a user runs it: `python -m shukei ...` in a subprocess, real files.

Exit codes: 0 success, 1 a failed run or bad data, 2 a usage error; an error is one `Error:` line
on stderr, with a traceback only under -v.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import pytest

from conftest import query, run_cli, write_entity
from shukei.cli import cli

# Hand-known business dates (timezone Asia/Tokyo, UTC+9, no DST):
#   o1 created 2025-03-01T10:00:00       (no offset = Tokyo local)  -> 2025-03-01
#   o2 created 2025-03-01T20:00:00Z      (= 2025-03-02 05:00 Tokyo) -> 2025-03-02
#   o3 created 2025-03-04T08:59:00+09:00 (that instant, Tokyo)      -> 2025-03-04
#   o4 created 2025-03-05T10:00:00 but cancelled: not counted, dirties nothing
ORDERS = [
    ("o1", "c1", "paid", "east", "2025-03-01T10:00:00", "2025-03-01T10:00:00"),
    ("o2", "c2", "paid", "west", "2025-03-01T20:00:00Z", "2025-03-01T20:00:00Z"),
    ("o3", "c1", "shipped", "east", "2025-03-04T08:59:00+09:00", "2025-03-04T08:59:00+09:00"),
    ("o4", "c2", "cancelled", "west", "2025-03-05T10:00:00", "2025-03-05T10:00:00"),
]
ITEMS = [
    ("o1", 1, "p1", 2, "10.00", "2025-03-01T10:00:00"),  # 2 * 10.00 = 20.00
    ("o2", 1, "p1", 1, "5.50", "2025-03-01T20:00:00Z"),  # 1 * 5.50 = 5.50
    ("o3", 1, "p2", 3, "1.25", "2025-03-04T08:59:00+09:00"),  # 3 * 1.25 = 3.75
    ("o4", 1, "p2", 1, "100.00", "2025-03-05T10:00:00"),  # cancelled order
]
CUSTOMERS = [
    ("c1", "Aiko", "aiko@example.com", "east", "2025-01-01T00:00:00"),
    ("c2", "Ben", "ben@example.com", "west", "2025-01-01T00:00:00"),
]
PRODUCTS = [
    ("p1", "Tea", "drinks", "2025-01-01T00:00:00"),
    ("p2", "Rice", "food", "2025-01-01T00:00:00"),
]
EXPECTED_DATES = ["2025-03-01", "2025-03-02", "2025-03-04"]
EXPECTED_REVENUE = {
    "2025-03-01": Decimal("20.00"),
    "2025-03-02": Decimal("5.50"),
    "2025-03-04": Decimal("3.75"),
}

# Imported inside functions only, so that `shukei --help` starts instantly (pyproject's ruff ban).
HEAVY = ("duckdb", "pyarrow", "numpy", "rich", "sqlglot", "msgspec", "pydantic")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    write_entity(folder, "orders", ORDERS)
    write_entity(folder, "order_items", ITEMS)
    write_entity(folder, "customers", CUSTOMERS)
    write_entity(folder, "products", PRODUCTS)
    return folder


@pytest.fixture
def wh(tmp_path: Path) -> Path:
    # Not named shukei.duckdb: a file's catalog name would clash with schema `shukei` when the
    # test reads it directly.
    return tmp_path / "wh" / "wh.duckdb"


def url(path: Path) -> str:
    return f"duckdb:///{path}"


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("Error:")]


def assert_one_error(res: subprocess.CompletedProcess[str], code: int) -> str:
    """Exit `code`, exactly one `Error:` line on stderr, no traceback; returns the line."""
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    lines = error_lines(res.stderr)
    assert len(lines) == 1, res.stderr
    return lines[0]


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command of the click tree, as argument tuples."""
    out: list[tuple[str, ...]] = []
    for name, cmd in sorted(group.commands.items()):
        path = (*prefix, name)
        out.append(path)
        if isinstance(cmd, click.Group):
            out += command_paths(cmd, path)
    return out


# -- help ----------------------------------------------------------------------------------------
def test_top_level_help_exits_0() -> None:
    res = run_cli("--help")
    assert res.returncode == 0, res.stderr
    assert "Usage:" in res.stdout
    for name in cli.commands:
        assert name in res.stdout


@pytest.mark.parametrize("path", command_paths(cli), ids=" ".join)
def test_every_subcommand_help_exits_0(path: tuple[str, ...]) -> None:
    res = run_cli(*path, "--help")
    assert res.returncode == 0, res.stderr
    assert "Usage:" in res.stdout
    assert res.stderr == ""


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["generate", "sales", "--help"]])
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    script = (
        "import json, sys, time\n"
        "t0 = time.perf_counter()\n"
        "import shukei.cli\n"
        "try:\n"
        f"    shukei.cli.main({argv!r})\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "sys.stderr.write(json.dumps({'code': code, 'heavy': heavy,"
        " 'seconds': time.perf_counter() - t0}))\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stderr)
    # The time is reported for information only (never asserted: machines differ).
    assert doc["code"] == 0, doc
    assert doc["heavy"] == [], f"`shukei {' '.join(argv)}` imported {doc['heavy']} ({doc})"
    assert "Usage:" in res.stdout


def test_help_writes_nothing(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    res = run_cli("--help", cwd=tmp_path)
    seconds = time.perf_counter() - t0  # reported only, never asserted
    assert res.returncode == 0, res.stderr
    # --help opens no warehouse and writes no file.
    assert list(tmp_path.iterdir()) == [], f"--help ({seconds:.2f}s) wrote files"


def test_installed_console_script() -> None:
    """The `shukei` script pip installed next to this Python is the same command."""
    script = Path(sys.executable).parent / "shukei"
    assert script.is_file(), f"no console script at {script}"
    res = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "Usage: shukei" in res.stdout


def test_version() -> None:
    res = run_cli("--version")
    assert res.returncode == 0, res.stderr
    assert "0.1.0" in res.stdout


# -- ingest, run, status, diff -------------------------------------------------------------------
def test_ingest_then_run_json_status_diff(tmp_path: Path, data_dir: Path, wh: Path) -> None:
    ing = run_cli("--warehouse", url(wh), "ingest", "sales", str(data_dir), cwd=tmp_path)
    assert ing.returncode == 0, ing.stderr
    assert "batch 1" in ing.stdout

    res = run_cli("--warehouse", url(wh), "run", "sales", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    # Exactly one JSON object on stdout (json.loads rejects anything after the first document).
    doc = json.loads(res.stdout)
    assert isinstance(doc, dict)
    assert res.stdout.strip().count("\n") == 0
    assert {"run_id", "status", "dates", "reasons"} <= set(doc)
    assert doc["status"] == "success"
    assert doc["dates"] == EXPECTED_DATES
    assert doc["reasons"] == {d: "missing" for d in EXPECTED_DATES}
    assert doc["failed"] == []
    # Logs go to stderr, never into the JSON on stdout.
    assert "run started" in res.stderr

    rows = query(wh, "SELECT CAST(sales_date AS VARCHAR), revenue FROM marts.daily_sales")
    assert dict(rows) == EXPECTED_REVENUE

    st = run_cli("--warehouse", url(wh), "status", "sales", "--json", cwd=tmp_path)
    assert st.returncode == 0, st.stderr
    sdoc = json.loads(st.stdout)
    assert sdoc["pipeline"] == "sales"
    assert sdoc["partitions"]["built"] == 3
    assert sdoc["partitions"]["dirty"] == []
    assert sdoc["pending_batches"] == 0
    assert sdoc["runs"][0]["run_id"] == doc["run_id"]
    assert sdoc["runs"][0]["status"] == "success"

    df = run_cli("--warehouse", url(wh), "diff", "sales", "--json", cwd=tmp_path)
    assert df.returncode == 0, df.stderr
    ddoc = json.loads(df.stdout)
    assert ddoc["run_id"] == doc["run_id"]
    daily = {
        c["partition"]: c["totals_after"]["revenue"]
        for c in ddoc["changes"]
        if c["mart"] == "daily_sales"
    }
    assert {k: Decimal(v) for k, v in daily.items()} == EXPECTED_REVENUE

    # The plain-text forms work too.
    for cmd in (["status", "sales"], ["diff", "sales"], ["check", "sales"]):
        r = run_cli("--warehouse", url(wh), *cmd, cwd=tmp_path)
        assert r.returncode == 0, (cmd, r.stderr)
        assert r.stdout.strip(), cmd

    # An unknown run id is a clear error.
    bad = run_cli("--warehouse", url(wh), "diff", "sales", "--run", "nope", cwd=tmp_path)
    assert bad.returncode in (1, 2)
    assert "nope" in assert_one_error(bad, bad.returncode)

    # A second run has nothing to do.
    again = run_cli("--warehouse", url(wh), "run", "sales", "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["dates"] == []


# -- usage errors: exit 2 ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "sales", "--bogus"], "--bogus"),
        (["--no-such-global", "run", "sales"], "--no-such-global"),
        (["run", "sales", "--date", "2025-13-01"], "2025-13-01"),
        (["run", "sales", "--start-date", "2025-02-30", "--end-date", "2025-03-01"], "2025-02-30"),
        (["nosuchcommand"], "nosuchcommand"),
        (["run"], "PIPELINE"),
    ],
)
def test_usage_error_exits_2(tmp_path: Path, wh: Path, args: list[str], needle: str) -> None:
    res = run_cli("--warehouse", url(wh), *args, cwd=tmp_path)
    line = assert_one_error(res, 2)
    assert needle in res.stderr, line
    assert not wh.exists(), "a usage error must not create the warehouse"


def test_unknown_pipeline_exits_2_with_hint(tmp_path: Path, wh: Path) -> None:
    res = run_cli("--warehouse", url(wh), "run", "sale", cwd=tmp_path)
    line = assert_one_error(res, 2)
    assert "sale" in line
    assert "did you mean 'sales'" in line


def test_end_before_start_is_a_usage_error(tmp_path: Path, wh: Path) -> None:
    res = run_cli(
        "--warehouse",
        url(wh),
        "run",
        "sales",
        "--start-date",
        "2025-03-05",
        "--end-date",
        "2025-03-01",
        cwd=tmp_path,
    )
    line = assert_one_error(res, 2)
    assert "2025-03-01" in line and "2025-03-05" in line


# -- bad data: exit 1 ----------------------------------------------------------------------------
def test_missing_column_exits_1_one_error_line(tmp_path: Path, wh: Path) -> None:
    bad = tmp_path / "bad" / "orders.csv"
    bad.parent.mkdir()
    bad.write_text("order_id,customer_id,status\no1,c1,paid\n", encoding="utf-8")
    res = run_cli("--warehouse", url(wh), "ingest", "sales", str(bad.parent), cwd=tmp_path)
    line = assert_one_error(res, 1)
    assert "orders.csv" in line
    for col in ("region", "created_at", "updated_at"):
        assert col in line
    # The only stderr output is that line.
    assert res.stderr.strip().splitlines() == [line]

    verbose = run_cli("-v", "--warehouse", url(wh), "ingest", "sales", str(bad.parent))
    assert verbose.returncode == 1
    assert "Traceback (most recent call last)" in verbose.stderr
    assert len(error_lines(verbose.stderr)) == 1


def test_nonexistent_path_exits_1(tmp_path: Path, wh: Path) -> None:
    missing = tmp_path / "nowhere" / "orders.csv"
    res = run_cli("--warehouse", url(wh), "ingest", "sales", str(missing), cwd=tmp_path)
    line = assert_one_error(res, 1)
    assert str(missing) in line

    verbose = run_cli("--verbose", "--warehouse", url(wh), "ingest", "sales", str(missing))
    assert verbose.returncode == 1
    assert "Traceback (most recent call last)" in verbose.stderr


def test_bad_data_does_not_half_ingest(tmp_path: Path, data_dir: Path, wh: Path) -> None:
    """A folder with one unusable file is rejected whole: nothing reaches raw."""
    (data_dir / "orders_extra.csv").write_text("order_id,status\nx,paid\n", encoding="utf-8")
    res = run_cli("--warehouse", url(wh), "ingest", "sales", str(data_dir), cwd=tmp_path)
    assert_one_error(res, 1)
    st = run_cli("--warehouse", url(wh), "status", "sales", "--json", cwd=tmp_path)
    assert st.returncode == 0, st.stderr
    assert json.loads(st.stdout)["batches"] == []


def test_failed_run_exits_1_with_json_report(tmp_path: Path, data_dir: Path, wh: Path) -> None:
    """A user pipeline (a copy of sales plus one blocking check that fails for 2025-03-02)."""
    import shutil

    import shukei

    pipe = tmp_path / "mypipe"
    shutil.copytree(Path(shukei.__file__).parent / "pipelines" / "sales", pipe)
    with open(pipe / "pipeline.toml", "a", encoding="utf-8") as fh:
        fh.write(
            '\n[[checks]]\nname = "no_sales_on_march_2"\nkind = "sql"\n'
            'table = "marts.daily_sales"\nsql = """\nSELECT * FROM marts.daily_sales\n'
            'WHERE sales_date IN @dates AND sales_date = DATE \'2025-03-02\'\n"""\n'
        )
    ing = run_cli("--warehouse", url(wh), "ingest", str(pipe), str(data_dir), cwd=tmp_path)
    assert ing.returncode == 0, ing.stderr
    res = run_cli(
        "--log-format", "json", "--warehouse", url(wh), "run", str(pipe), "--json", cwd=tmp_path
    )
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)  # still exactly one JSON object on stdout
    assert doc["status"] == "failed"
    assert doc["dates"] == ["2025-03-01", "2025-03-04"]
    assert [f["date"] for f in doc["failed"]] == ["2025-03-02"]
    assert "no_sales_on_march_2" in doc["failed"][0]["error"]
    assert "Traceback" not in res.stderr
    errors = error_lines(res.stderr)
    assert len(errors) == 1, res.stderr
    assert "2025-03-02" in errors[0] and "no_sales_on_march_2" in errors[0]
    # Every other stderr line is a JSON log line; the per-date failure carries its date.
    logs = parse_json_lines("\n".join(ln for ln in res.stderr.splitlines() if ln not in errors))
    failed_lines = [d for d in logs if d["level"] == "error" and d["date"]]
    assert [d["date"] for d in failed_lines] == ["2025-03-02"]
    # The failed date keeps its previous (here: no) content; the other dates are built.
    rows = query(wh, "SELECT CAST(sales_date AS VARCHAR), revenue FROM marts.daily_sales")
    assert dict(rows) == {k: v for k, v in EXPECTED_REVENUE.items() if k != "2025-03-02"}


# -- settings ------------------------------------------------------------------------------------
def duckdb_files(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.duckdb")}


def test_settings_precedence(tmp_path: Path) -> None:
    work = tmp_path / "proj"
    work.mkdir()
    (work / "shukei.toml").write_text('warehouse = "duckdb:///toml.duckdb"\n', encoding="utf-8")
    env = {"SHUKEI_WAREHOUSE": "duckdb:///env.duckdb"}

    # 1. --warehouse beats SHUKEI_WAREHOUSE and shukei.toml
    r = run_cli("--warehouse", "duckdb:///cli.duckdb", "status", "sales", cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    assert duckdb_files(work) == {"cli.duckdb"}

    # 2. SHUKEI_WAREHOUSE beats shukei.toml
    r = run_cli("status", "sales", cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    assert duckdb_files(work) == {"cli.duckdb", "env.duckdb"}

    # 3. shukei.toml beats the default
    r = run_cli("status", "sales", cwd=work)
    assert r.returncode == 0, r.stderr
    assert duckdb_files(work) == {"cli.duckdb", "env.duckdb", "toml.duckdb"}

    # 4. the default: duckdb:///shukei.duckdb in the current folder
    (work / "shukei.toml").unlink()
    r = run_cli("status", "sales", cwd=work)
    assert r.returncode == 0, r.stderr
    assert duckdb_files(work) == {"cli.duckdb", "env.duckdb", "toml.duckdb", "shukei.duckdb"}


def test_env_setting_beats_toml_setting(tmp_path: Path, data_dir: Path, wh: Path) -> None:
    """A non-warehouse setting: SHUKEI_TIMEZONE=UTC beats timezone in shukei.toml.

    In UTC, o1 2025-03-01T10:00:00 (no offset = UTC now) -> 03-01; o2 2025-03-01T20:00:00Z ->
    03-01; o3 2025-03-04T08:59:00+09:00 = 2025-03-03T23:59Z -> 03-03.
    """
    (tmp_path / "shukei.toml").write_text('timezone = "Asia/Tokyo"\n', encoding="utf-8")
    env = {"SHUKEI_TIMEZONE": "UTC"}
    assert (
        run_cli("--warehouse", url(wh), "ingest", "sales", str(data_dir), cwd=tmp_path).returncode
        == 0
    )
    res = run_cli("--warehouse", url(wh), "run", "sales", "--json", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["dates"] == ["2025-03-01", "2025-03-03"]


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('timezone = "Mars/Base"\n', "timezone"),
        ("chunk_days = 0\n", "chunk_days"),
        ('colour = "blue"\n', "colour"),
        ('lock_timeout = "soon"\n', "lock_timeout"),
    ],
)
def test_invalid_setting_in_toml(tmp_path: Path, toml: str, key: str) -> None:
    (tmp_path / "shukei.toml").write_text(toml, encoding="utf-8")
    res = run_cli("run", "sales", cwd=tmp_path)
    line = assert_one_error(res, 2)
    assert res.stderr.strip().splitlines() == [line]
    assert key in line
    assert "shukei.toml" in line
    assert duckdb_files(tmp_path) == set(), "no warehouse may be opened with invalid settings"


def test_invalid_setting_in_env_names_the_variable(tmp_path: Path) -> None:
    res = run_cli("status", "sales", cwd=tmp_path, env={"SHUKEI_CHUNK_DAYS": "0"})
    line = assert_one_error(res, 2)
    assert "chunk_days" in line
    assert "SHUKEI_CHUNK_DAYS" in line


def test_toml_syntax_error_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "shukei.toml").write_text("warehouse = \n", encoding="utf-8")
    res = run_cli("status", "sales", cwd=tmp_path)
    assert res.returncode in (1, 2)
    line = assert_one_error(res, res.returncode)
    assert "shukei.toml" in line


# -- logs ----------------------------------------------------------------------------------------
def parse_json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for ln in text.splitlines():
        doc = json.loads(ln)  # every stderr line is one JSON object
        assert isinstance(doc, dict), ln
        out.append(doc)
    return out


def test_log_format_json(tmp_path: Path, data_dir: Path, wh: Path) -> None:
    ing = run_cli("--log-format", "json", "--warehouse", url(wh), "ingest", "sales", str(data_dir))
    assert ing.returncode == 0, ing.stderr
    ing_logs = parse_json_lines(ing.stderr)
    assert ing_logs, "ingest logs something"
    assert all("run_id" in d and "message" in d and "level" in d for d in ing_logs)

    log_file = tmp_path / "logs" / "run.jsonl"
    res = run_cli(
        "--log-format",
        "json",
        "--log-file",
        str(log_file),
        "--warehouse",
        url(wh),
        "run",
        "sales",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    logs = parse_json_lines(res.stderr)
    assert logs
    # The file gets the same JSON lines.
    assert parse_json_lines(log_file.read_text(encoding="utf-8")) == logs
    for d in logs:
        assert d["run_id"] == report["run_id"], d
    per_date = [d for d in logs if d["message"].startswith("rebuilt (")]
    assert sorted(d["date"] for d in per_date) == EXPECTED_DATES
    assert all(d["date"] is None for d in logs if d["message"].startswith("run started"))


def test_log_format_json_from_env(tmp_path: Path, data_dir: Path, wh: Path) -> None:
    res = run_cli(
        "--warehouse",
        url(wh),
        "ingest",
        "sales",
        str(data_dir),
        env={"SHUKEI_LOG_FORMAT": "json"},
    )
    assert res.returncode == 0, res.stderr
    assert parse_json_lines(res.stderr)


def test_log_file(tmp_path: Path, data_dir: Path, wh: Path) -> None:
    log_file = tmp_path / "logs" / "shukei.log"
    assert run_cli("--warehouse", url(wh), "ingest", "sales", str(data_dir)).returncode == 0
    res = run_cli("--log-file", str(log_file), "--warehouse", url(wh), "run", "sales", "--json")
    assert res.returncode == 0, res.stderr
    run_id = json.loads(res.stdout)["run_id"]
    text = log_file.read_text(encoding="utf-8")
    assert "run started" in text
    assert run_id in text
    for d in EXPECTED_DATES:
        assert f"date={d}" in text
    # The log file holds the same lines as stderr.
    assert text.splitlines() == res.stderr.splitlines()


# -- other errors --------------------------------------------------------------------------------
def test_diff_before_any_run(tmp_path: Path, wh: Path) -> None:
    for args in (["diff", "sales"], ["diff", "sales", "--json"]):
        res = run_cli("--warehouse", url(wh), *args, cwd=tmp_path)
        assert res.returncode in (1, 2), res
        line = assert_one_error(res, res.returncode)
        assert "no runs" in line
        assert "shukei run sales" in line
        assert res.stdout == ""


def test_pipelines_lists_sales() -> None:
    res = run_cli("pipelines")
    assert res.returncode == 0, res.stderr
    heads = [line.split(":")[0] for line in res.stdout.splitlines() if not line.startswith(" ")]
    assert heads == ["events", "sales"]  # the built-in pipelines, by name
    assert "daily_sales" in res.stdout
    assert "mart_funnel_daily" in res.stdout

    js = run_cli("pipelines", "--json")
    assert js.returncode == 0, js.stderr
    docs = json.loads(js.stdout)
    sales = next(d for d in docs if d["name"] == "sales")
    assert set(sales["entities"]) == {"customers", "products", "orders", "order_items"}
    assert {"order_facts", "daily_sales", "monthly_sales", "customer_metrics"} <= set(
        sales["marts"]
    )


@pytest.mark.parametrize("how", ["option", "env"])
def test_unknown_warehouse_scheme(tmp_path: Path, how: str) -> None:
    bad = "duckdb2:///x.duckdb"
    if how == "option":
        res = run_cli("--warehouse", bad, "status", "sales", cwd=tmp_path)
    else:
        res = run_cli("status", "sales", cwd=tmp_path, env={"SHUKEI_WAREHOUSE": bad})
    assert res.returncode in (1, 2)
    line = assert_one_error(res, res.returncode)
    assert "duckdb2" in line
    assert "duckdb://" in line  # names what is supported
    assert list(tmp_path.iterdir()) == []


def test_warehouse_url_without_file(tmp_path: Path) -> None:
    res = run_cli("--warehouse", "duckdb://", "status", "sales", cwd=tmp_path)
    assert res.returncode in (1, 2)
    line = assert_one_error(res, res.returncode)
    assert "duckdb://" in line
