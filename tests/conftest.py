"""Shared fixtures: real DuckDB warehouse files in tmp folders, small hand-made input files."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest

import pg
from shukei.project import Project

ORDERS = ("order_id", "customer_id", "status", "region", "created_at", "updated_at")
ITEMS = ("order_id", "line_no", "product_id", "quantity", "unit_price", "updated_at")
CUSTOMERS = ("customer_id", "name", "email", "region", "updated_at")
PRODUCTS = ("product_id", "name", "category", "updated_at")
Warehouse = Path | str
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


ENGINES = ["duckdb", "postgresql"]


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    """Every behavioural test runs on each warehouse engine."""
    name = str(request.param)
    if name == "postgresql" and pg.admin_url() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no PostgreSQL server or binaries are available")
        pytest.skip("no PostgreSQL server is running and no PostgreSQL binaries were found")
    return name


@pytest.fixture
def warehouse_url(engine_name: str, tmp_path: Path) -> Iterator[str]:
    if engine_name == "duckdb":
        yield f"duckdb:///{tmp_path / 'wh' / 'shukei.duckdb'}"
        return
    url = pg.create_database()
    try:
        yield url
    finally:
        pg.drop_database(url)


@pytest.fixture
def warehouse_path(warehouse_url: str) -> Warehouse:
    """What `query` reads: the DuckDB file's path, or the PostgreSQL database's URL."""
    if warehouse_url.startswith("duckdb:"):
        return Path(warehouse_url.split(":///", 1)[1])
    return warehouse_url


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Work in `tmp_path`, with no shukei.toml or SHUKEI_* variables leaking in."""
    for k in list(os.environ):
        if k.startswith("SHUKEI_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def project(warehouse_url: str, clean_env: Path) -> Project:
    """A Project on a fresh DuckDB file; no shukei.toml or SHUKEI_* variables leak in."""
    return Project(warehouse=warehouse_url, lock_timeout=5)


def query(warehouse: Warehouse, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """An independent read of the warehouse (the project must not hold it open).

    `?` placeholders work on both engines.
    """
    if isinstance(warehouse, str):
        import psycopg

        with psycopg.connect(warehouse, cursor_factory=psycopg.ClientCursor) as con:
            return [tuple(r) for r in con.execute(sql.replace("?", "%s"), list(params) or None)]
    # Attached under another name, as the engine does: a file named shukei.duckdb would
    # otherwise make `shukei.x` ambiguous between the catalog and the state schema.
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH '{warehouse}' AS warehouse (READ_ONLY)")
        con.execute("USE warehouse")
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
