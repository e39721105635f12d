"""DuckDB: raw columns are stored with the compression their content calls for.

DuckDB would otherwise try every method on every column while writing; raw tables name one per
column (integers and flags as a dictionary, other text as FSST, lineage as RLE / bit-packing).
"""

from __future__ import annotations

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
