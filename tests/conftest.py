"""Shared fixtures: real DuckDB warehouse files in tmp folders, small hand-made input files."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest

from shukei.project import Project

ORDERS = ("order_id", "customer_id", "status", "region", "created_at", "updated_at")
ITEMS = ("order_id", "line_no", "product_id", "quantity", "unit_price", "updated_at")
CUSTOMERS = ("customer_id", "name", "email", "region", "updated_at")
PRODUCTS = ("product_id", "name", "category", "updated_at")
HEADERS = {"orders": ORDERS, "order_items": ITEMS, "customers": CUSTOMERS, "products": PRODUCTS}


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV input file (header + rows, values as given; None -> empty field)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in rows:
            w.writerow(["" if v is None else v for v in r])
    return path


def write_entity(
    folder: Path, entity: str, rows: Iterable[Sequence[Any]], suffix: str = ""
) -> Path:
    """Write `<folder>/<entity><suffix>.csv` with the entity's contract header."""
    return write_csv(folder / f"{entity}{suffix}.csv", HEADERS[entity], rows)


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "wh" / "shukei.duckdb"


@pytest.fixture
def warehouse_url(warehouse_path: Path) -> str:
    return f"duckdb:///{warehouse_path}"


@pytest.fixture
def project(warehouse_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Project:
    """A Project on a fresh DuckDB file; no shukei.toml or SHUKEI_* variables leak in."""
    for k in list(os.environ):
        if k.startswith("SHUKEI_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    return Project(warehouse=warehouse_url, lock_timeout=5)


def query(warehouse_path: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """An independent read of the warehouse file (the project must not hold it open)."""
    con = duckdb.connect(str(warehouse_path), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real `shukei` entry point in a subprocess."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SHUKEI_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "shukei", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
