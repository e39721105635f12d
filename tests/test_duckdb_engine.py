"""What the DuckDB engine does for speed, and that it changes nothing else.

- Raw columns are stored with the compression their content calls for: DuckDB would otherwise
  try every method on every column while writing; raw tables name one per column (integers and
  flags as a dictionary, other text as FSST, lineage as RLE / bit-packing).
- Without pandas, `import pandas` is made to fail at once (DuckDB's binding retries it for every
  bound value); with pandas installed, pandas stays importable.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb

from conftest import write_entity
from shukei.project import Project


def test_raw_columns_use_the_named_compression(tmp_path: Path) -> None:
    data = tmp_path / "in"
    write_entity(
        data,
        "order_items",
        [
            (
                f"O{i}",
                str(i % 3 + 1),
                f"P{i % 7}",
                str(i % 5 + 1),
                f"{i}.50",
                f"2025-12-01T10:{i % 60:02d}:00",
            )
            for i in range(300)
        ],
    )
    wh = tmp_path / "wh.duckdb"
    Project(warehouse=f"duckdb:///{wh}").ingest("sales", [data])
    with duckdb.connect(str(wh), read_only=True) as con:
        stored = dict(
            con.execute(
                "SELECT column_name, min(compression) FROM pragma_storage_info('raw.order_items') "
                "WHERE segment_type <> 'VALIDITY' GROUP BY 1"
            ).fetchall()
        )
        values = con.execute(
            "SELECT line_no, unit_price, _row_no FROM raw.order_items WHERE order_id = 'O299'"
        ).fetchall()
    assert stored == {
        "_batch_id": "Constant",  # one batch: a constant segment, whatever is named
        "_ingested_at": "Constant",
        "_source_file": "Dictionary",
        "_row_no": "BitPacking",
        "order_id": "FSST",
        "line_no": "Dictionary",  # integer
        "product_id": "FSST",
        "quantity": "Dictionary",  # integer
        "unit_price": "FSST",
        "updated_at": "FSST",
    }
    assert values == [("3", "299.50", 300)]  # 299 % 3 + 1; the 300th data row


PROBE = """
import sys
from shukei.engines.duckdb import DuckDBEngine
eng = DuckDBEngine(sys.argv[1])
assert eng.scalar("SELECT ? || ?", ("a", "b")) == "ab"
try:
    import pandas
    print("pandas", pandas.__file__)
except ImportError as exc:
    # pyarrow probes for pandas too, and must still work.
    import pyarrow as pa
    assert pa.array([1, 2]).to_pylist() == [1, 2]
    print("no pandas", type(exc).__name__, getattr(sys.meta_path[0], "__name__", "?"))
eng.close()
"""


def _probe(tmp_path: Path, extra_path: Path | None) -> str:
    env_path = [str(extra_path)] if extra_path else []
    code = f"import sys; sys.path[:0] = {env_path!r}\n" + PROBE
    res = subprocess.run(
        [sys.executable, "-c", code, f"duckdb:///{tmp_path / 'p.duckdb'}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_pandas_fails_fast_only_where_it_is_missing(tmp_path: Path) -> None:
    # This environment has no pandas: the import fails, as it would anyway.
    assert _probe(tmp_path, None) == "no pandas ModuleNotFoundError _NoPandas"
    # A pandas on the path stays importable after the engine started.
    fake = tmp_path / "site" / "pandas"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    assert _probe(tmp_path, tmp_path / "site") == f"pandas {fake / '__init__.py'}"


def test_a_writer_keeps_the_warehouse_in_the_v1_2_format(tmp_path: Path) -> None:
    """New warehouses are created, and older files upgraded, in DuckDB's v1.2 storage format."""
    old = tmp_path / "old.duckdb"
    with duckdb.connect(str(old)) as con:  # DuckDB's default format for a new file
        con.execute("CREATE TABLE t (a INTEGER)")
        before = con.execute(
            "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = 'old'"
        ).fetchone()
    new = tmp_path / "new.duckdb"
    for wh in (old, new):
        Project(warehouse=f"duckdb:///{wh}").run("sales")
    versions = {}
    for wh in (old, new):
        with duckdb.connect(str(wh), read_only=True) as con:
            versions[wh.stem] = con.execute(
                "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = ?",
                [wh.stem],
            ).fetchone()
    assert before is not None and not before[0].startswith("v1.2")
    assert versions == {"old": ("v1.2.0+",), "new": ("v1.2.0+",)}


def test_a_warehouse_in_a_newer_format_stays_in_it(tmp_path: Path) -> None:
    """DuckDB cannot lower a file's storage version: shukei writes it in its own format."""
    wh = tmp_path / "newer.duckdb"
    with duckdb.connect(":memory:") as con:
        con.execute(f"ATTACH '{wh}' AS newer (STORAGE_VERSION 'v1.4.0')")
        con.execute("CREATE TABLE newer.t (a INTEGER)")
    data = tmp_path / "in"
    write_entity(
        data, "orders", [("O1", "C1", "paid", "east", "2025-12-01T10:00:00", "2025-12-01T10:00:00")]
    )
    write_entity(data, "order_items", [("O1", "1", "P1", "2", "3.50", "2025-12-01T10:00:00")])
    project = Project(warehouse=f"duckdb:///{wh}")
    project.ingest("sales", [data])
    assert project.run("sales").status == "success"
    with duckdb.connect(str(wh), read_only=True) as con:
        version = con.execute(
            "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = 'newer'"
        ).fetchone()
        revenue = con.execute("SELECT sales_date, revenue FROM marts.daily_sales").fetchall()
    assert version == ("v1.4.0+",)
    assert revenue == [(date(2025, 12, 1), Decimal("7.00"))]  # 2 x 3.50, 10:00 in Tokyo
