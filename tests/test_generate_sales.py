"""Tests for the dirty sales generator, checked by reading the written files back.

Expectations are computed independently of the generator's internals: files are parsed with
the csv/json modules, pyarrow.parquet and duckdb, timestamps with ``datetime.fromisoformat``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import unicodedata
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shukei.generate.sales import (
    CATEGORIES,
    COLUMNS,
    REGIONS,
    STATUSES,
    SalesGenSummary,
    generate_late_batch,
    generate_sales,
)

START = date(2025, 12, 1)
JST = timezone(timedelta(hours=9))
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|\+09:00)?$")
ORDER_RE = re.compile(r"^O(\d{8})-(\d{6})$")
EMAIL_RE = re.compile(r"^[a-z0-9._]+@[a-z0-9-]+(\.[a-z0-9-]+)+$")
PRICE_RE = re.compile(r"^\d+\.\d{2}$")

Row = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Independent readers and parsers
# ---------------------------------------------------------------------------------------------


def read_file(path: Path) -> list[Row]:
    """Rows of one file as dicts of str/None (CSV cannot tell null from empty: both '')."""
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    if path.suffix == ".parquet":
        rows: list[Row] = pq.read_table(path).to_pylist()
        return rows
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def read_entity(out: Path, entity: str) -> list[Row]:
    """All rows of an entity in delivery order, tagged with folder date and position."""
    rows: list[Row] = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        for path in sorted(folder.glob(f"{entity}_*")):
            assert path.name.startswith(f"{entity}_{folder.name}.")
            for pos, row in enumerate(read_file(path)):
                assert list(row) == list(COLUMNS[entity])
                row["_folder"] = date.fromisoformat(folder.name)
                row["_pos"] = pos
                rows.append(row)
    return rows


def values(row: Row, entity: str) -> tuple[str, ...]:
    return tuple(row[c] or "" for c in COLUMNS[entity])


def parse_ts(text: str | None) -> datetime | None:
    """Instant of one of the three contract spellings; naive means Asia/Tokyo (UTC+9, no DST)."""
    if not text or not TS_RE.match(text):
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return ts.replace(tzinfo=JST) if ts.tzinfo is None else ts


def tokyo_date(text: str | None) -> date | None:
    ts = parse_ts(text)
    return None if ts is None else ts.astimezone(JST).date()


def norm(text: str | None) -> str:
    return unicodedata.normalize("NFKC", text or "").strip().lower()


def is_int(text: str | None) -> bool:
    return bool(text) and re.fullmatch(r"-?\d+", text or "") is not None


def is_price(text: str | None) -> bool:
    try:
        return (
            text is not None
            and PRICE_RE.match(text.lstrip("-")) is not None
            and bool(Decimal(text))
        )
    except InvalidOperation:
        return False


def order_day(order_id: str) -> date:
    m = ORDER_RE.match(order_id)
    assert m, order_id
    return datetime.strptime(m.group(1), "%Y%m%d").date()


def digest(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def gen(out: Path, **kw: Any) -> SalesGenSummary:
    args: dict[str, Any] = dict(start=START, days=4, orders_per_day=60, seed=1)
    args.update(kw)
    return generate_sales(out, **args)


# ---------------------------------------------------------------------------------------------
# Fixtures: a few small datasets shared by the module
# ---------------------------------------------------------------------------------------------

CLEAN: dict[str, Any] = dict(
    days=4, orders_per_day=200, seed=11, late_rate=0, correction_rate=0, dirty_rate=0
)
DIRTY: dict[str, Any] = dict(days=8, orders_per_day=400, seed=5, late_rate=0.1, correction_rate=0.1)
DIRTY_RATE = 0.06
BASE: dict[str, Any] = dict(start=START, days=6, orders_per_day=100, seed=3)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SalesGenSummary]:
    out = tmp_path_factory.mktemp("clean")
    return out, gen(out, **CLEAN)


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SalesGenSummary]:
    out = tmp_path_factory.mktemp("dirty")
    return out, gen(out, dirty_rate=DIRTY_RATE, **DIRTY)


@pytest.fixture(scope="module")
def very_dirty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("very_dirty")
    gen(out, days=3, orders_per_day=500, seed=8, dirty_rate=0.6, late_rate=0.1)
    return out


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SalesGenSummary]:
    out = tmp_path_factory.mktemp("batch")
    generate_sales(out, **BASE)
    summary = generate_late_batch(
        out, **BASE, batch_seed=9, lines=500, corrections=60, late_dates=2
    )
    return out, summary


# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------


def test_invalid_format_raises_one_line_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format") as err:
        gen(tmp_path, fmt="xlsx")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="format"):
        generate_late_batch(tmp_path, **BASE, batch_seed=1, fmt="CSV")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kw", [dict(days=0), dict(orders_per_day=0), dict(dirty_rate=1.5), dict(late_rate=-0.1)]
)
def test_invalid_sizes_and_rates_raise(tmp_path: Path, kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        gen(tmp_path, **kw)


# ---------------------------------------------------------------------------------------------
# Reproducibility and formats
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, fmt: str) -> None:
    kw = dict(fmt=fmt, late_rate=0.2, correction_rate=0.2, dirty_rate=0.2)
    gen(tmp_path / "a", **kw)
    gen(tmp_path / "b", **kw)
    gen(tmp_path / "c", seed=2, **kw)
    a, b, c = (digest(tmp_path / x) for x in "abc")
    assert a == b
    assert len(a) > 8
    assert a != c


def test_formats_carry_the_same_rows(tmp_path: Path) -> None:
    kw = dict(days=3, orders_per_day=80, seed=4, dirty_rate=0.3, late_rate=0.2)
    summaries = {fmt: gen(tmp_path / fmt, fmt=fmt, **kw) for fmt in ("csv", "parquet", "jsonl")}
    for entity in COLUMNS:
        per_fmt = {
            fmt: [(r["_folder"], values(r, entity)) for r in read_entity(tmp_path / fmt, entity)]
            for fmt in summaries
        }
        assert per_fmt["csv"] == per_fmt["parquet"] == per_fmt["jsonl"], entity
        assert len(per_fmt["csv"]) == summaries["csv"].rows[entity]
    names = [r["name"] for r in read_entity(tmp_path / "jsonl", "customers")]
    assert any("\n" in n for n in names) and any('"' in n for n in names)
    for path in (tmp_path / "parquet").rglob("*.parquet"):
        assert all(pa.types.is_string(f.type) for f in pq.read_schema(path))
    for path in (tmp_path / "jsonl").rglob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            assert all(v is None or isinstance(v, str) for v in json.loads(line).values())
    # The pipeline's reader must cope too: duckdb reads every format with the same row counts.
    con = duckdb.connect()
    for entity in COLUMNS:
        counts = {
            "csv": f"read_csv('{tmp_path}/csv/*/{entity}_*.csv', all_varchar=true, header=true)",
            "parquet": f"read_parquet('{tmp_path}/parquet/*/{entity}_*.parquet')",
            "jsonl": f"read_json('{tmp_path}/jsonl/*/{entity}_*.jsonl', format='newline_delimited',"
            f" columns={{{', '.join(repr(c) + ': ' + repr('VARCHAR') for c in COLUMNS[entity])}}})",
        }
        for fmt, source in counts.items():
            (n,) = con.execute(f"select count(*) from {source}").fetchone() or (None,)
            assert n == summaries[fmt].rows[entity], (entity, fmt)


# ---------------------------------------------------------------------------------------------
# Clean data (all rates 0)
# ---------------------------------------------------------------------------------------------


def test_clean_layout_counts_and_unique_keys(clean: tuple[Path, SalesGenSummary]) -> None:
    out, summary = clean
    days, n = CLEAN["days"], CLEAN["orders_per_day"]
    folders = sorted(p.name for p in out.iterdir())
    assert folders == [(START + timedelta(days=i)).isoformat() for i in range(days)]
    assert summary.dates == [START + timedelta(days=i) for i in range(days)]
    assert summary.files == sum(1 for _ in out.rglob("*.csv")) == 2 * days + 2

    orders = read_entity(out, "orders")
    assert len(orders) == days * n == summary.rows["orders"]
    ids = [r["order_id"] for r in orders]
    assert len(set(ids)) == len(ids)
    expected = {
        f"O{(START + timedelta(days=i)):%Y%m%d}-{k:06d}"
        for i in range(days)
        for k in range(1, n + 1)
    }
    assert set(ids) == expected

    customers = read_entity(out, "customers")
    products = read_entity(out, "products")
    assert len(customers) == max(50, n * days // 8) == summary.rows["customers"]
    assert len(products) == min(5000, max(20, n // 5)) == summary.rows["products"]
    assert {r["_folder"] for r in customers + products} == {START}
    assert len({r["customer_id"] for r in customers}) == len(customers)
    assert [r["customer_id"] for r in customers][:2] == ["C000001", "C000002"]
    assert [r["product_id"] for r in products][:2] == ["P00001", "P00002"]

    items = read_entity(out, "order_items")
    assert len(items) == summary.rows["order_items"]
    keys = [(r["order_id"], r["line_no"]) for r in items]
    assert len(set(keys)) == len(keys)


def test_clean_values_all_parse_and_rows_are_on_time(clean: tuple[Path, SalesGenSummary]) -> None:
    out, _ = clean
    customers = read_entity(out, "customers")
    products = read_entity(out, "products")
    orders = read_entity(out, "orders")
    items = read_entity(out, "order_items")
    customer_ids = {r["customer_id"] for r in customers}
    product_ids = {r["product_id"] for r in products}

    for c in customers:
        assert EMAIL_RE.match(c["email"]), c
        assert c["region"] in REGIONS
        assert c["name"] and unicodedata.normalize("NFKC", c["name"]) == c["name"]
        assert parse_ts(c["updated_at"]) is not None
    titles = {cat.capitalize() for cat in CATEGORIES}
    for p in products:
        assert p["category"] in titles
        assert parse_ts(p["updated_at"]) is not None

    created: dict[str, datetime] = {}
    for o in orders:
        c_at, u_at = parse_ts(o["created_at"]), parse_ts(o["updated_at"])
        assert c_at is not None and u_at is not None and u_at >= c_at, o
        assert c_at.astimezone(JST).date() == order_day(o["order_id"]) == o["_folder"]
        assert o["status"] in STATUSES and o["region"] in REGIONS
        assert o["customer_id"] in customer_ids
        created[o["order_id"]] = c_at

    lines: dict[str, list[int]] = defaultdict(list)
    order_folder = {o["order_id"]: o["_folder"] for o in orders}
    for it in items:
        assert it["_folder"] == order_folder[it["order_id"]]
        assert it["product_id"] in product_ids
        assert 1 <= int(it["quantity"]) <= 5
        assert PRICE_RE.match(it["unit_price"])
        assert Decimal("100.00") <= Decimal(it["unit_price"]) <= Decimal("20000.00")
        u_at = parse_ts(it["updated_at"])
        assert u_at is not None and u_at >= created[it["order_id"]]
        lines[it["order_id"]].append(int(it["line_no"]))
    assert set(lines) == set(created)  # every order has at least one line
    for nos in lines.values():
        assert sorted(nos) == list(range(1, len(nos) + 1)) and len(nos) <= 5
    assert 2.4 <= len(items) / len(orders) <= 3.0

    status = Counter(o["status"] for o in orders)
    assert 0.02 <= status["cancelled"] / len(orders) <= 0.09
    assert 0.003 <= status["refunded"] / len(orders) <= 0.05


def test_timestamp_spellings_denote_the_intended_instant(
    clean: tuple[Path, SalesGenSummary],
) -> None:
    out, _ = clean
    orders = read_entity(out, "orders")
    forms = Counter(
        "Z" if t.endswith("Z") else "+09:00" if t.endswith("+09:00") else "naive"
        for o in orders
        for t in (o["created_at"], o["updated_at"])
    )
    assert forms["+09:00"] > forms["Z"] > 0 and forms["naive"] > 0
    # Order numbers follow creation time, so whatever the spelling, the instants must be
    # non-decreasing in n within a day; a mis-converted spelling would break the order.
    by_day: dict[date, list[tuple[int, datetime]]] = defaultdict(list)
    for o in orders:
        ts = parse_ts(o["created_at"])
        assert ts is not None
        by_day[order_day(o["order_id"])].append((int(o["order_id"][-6:]), ts))
    for seq in by_day.values():
        instants = [ts for _, ts in sorted(seq)]
        assert instants == sorted(instants)
    # Timezone handling matters: late-evening orders in Tokyo are common, and a UTC-date
    # reading or a naive-as-UTC reading puts a good share of orders on another day.
    local = [parse_ts(o["created_at"]).astimezone(JST) for o in orders]  # type: ignore[union-attr]
    assert sum(t.hour == 23 for t in local) / len(local) >= 0.05
    utc_other_day = sum(t.astimezone(UTC).date() != t.date() for t in local)
    assert utc_other_day / len(local) >= 0.08
    naive = [o["created_at"] for o in orders if TS_RE.match(o["created_at"])]
    naive = [t for t in naive if not t.endswith(("Z", "+09:00"))]
    assert any(datetime.fromisoformat(t).hour == 23 for t in naive)


# ---------------------------------------------------------------------------------------------
# Dirt, lateness and corrections
# ---------------------------------------------------------------------------------------------


def test_every_dirt_kind_appears(very_dirty: Path) -> None:
    out = very_dirty
    entities = {e: read_entity(out, e) for e in COLUMNS}
    keys = {
        "customers": ("customer_id",),
        "products": ("product_id",),
        "orders": ("order_id",),
        "order_items": ("order_id", "line_no"),
    }
    for entity, rows in entities.items():
        # exact duplicates, in the same file and in a later file
        seen: dict[tuple[str, ...], list[date]] = defaultdict(list)
        for r in rows:
            seen[values(r, entity)].append(r["_folder"])
        dups = [f for f in seen.values() if len(f) > 1]
        assert any(len(set(f)) < len(f) for f in dups), entity
        if entity != "customers":  # customers all arrive on day 1 of 3, copies may too
            assert any(len(set(f)) > 1 for f in dups), entity
        # several versions of one key with the same updated_at in one file, values differing
        versions: dict[tuple[Any, ...], set[tuple[str, ...]]] = defaultdict(set)
        for r in rows:
            k = (r["_folder"], r["updated_at"], *(r[c] for c in keys[entity]))
            versions[k].add(values(r, entity))
        assert any(len(v) > 1 for v in versions.values()), entity
        # missing keys and bad timestamps
        assert any(not r[keys[entity][0]] for r in rows), entity
        assert any(parse_ts(r["updated_at"]) is None for r in rows), entity
        texts = {r["updated_at"] for r in rows if parse_ts(r["updated_at"]) is None}
        assert texts & {"yesterday", "2025-13-45T99:00:00", "", "not a date"}

    customers, products = entities["customers"], entities["products"]
    orders, items = entities["orders"], entities["order_items"]
    assert any(c["email"] and not EMAIL_RE.match(c["email"]) for c in customers)
    assert any(c["region"] not in REGIONS and norm(c["region"]) in REGIONS for c in customers)
    for rows in (customers, products):
        names = [r["name"] for r in rows]
        assert any(re.search("[\uff01-\uff5e\u3000]", n) for n in names)
        assert any("DROP TABLE" in n for n in names)
    assert any("\n" in c["name"] or "," in c["name"] for c in customers)
    cats = {p["category"] for p in products}
    assert any(
        c not in {x.capitalize() for x in CATEGORIES} and norm(c) in CATEGORIES for c in cats
    )

    statuses = {o["status"] for o in orders}
    odd = {s for s in statuses if s not in STATUSES and norm(s) in STATUSES}
    assert any(s != s.strip() for s in odd) and any(s.isupper() for s in odd)
    assert any(o["region"] not in REGIONS and norm(o["region"]) in REGIONS for o in orders)
    assert any(not o["customer_id"] for o in orders)
    assert any(parse_ts(o["created_at"]) is None for o in orders)

    qty = [i["quantity"] for i in items]
    price = [i["unit_price"] for i in items]
    assert any(not is_int(q) for q in qty) and any(not is_price(p) for p in price)
    assert "0" in qty and any(q.startswith("-") and is_int(q) for q in qty)
    assert any(p.startswith("-") and is_price(p) for p in price)
    assert any(not i["product_id"] for i in items)


def abnormal_order(o: Row) -> bool:
    return (
        o["status"] not in STATUSES
        or o["region"] not in REGIONS
        or not o["order_id"]
        or not o["customer_id"]
        or parse_ts(o["created_at"]) is None
        or parse_ts(o["updated_at"]) is None
    )


def abnormal_item(i: Row) -> bool:
    return (
        not is_int(i["quantity"])
        or not 1 <= int(i["quantity"]) <= 5
        or not is_price(i["unit_price"])
        or i["unit_price"].startswith("-")
        or not i["order_id"]
        or not i["product_id"]
        or parse_ts(i["updated_at"]) is None
    )


def test_dirt_share_roughly_matches_rate(dirty: tuple[Path, SalesGenSummary]) -> None:
    out, _ = dirty
    orders = read_entity(out, "orders")
    items = read_entity(out, "order_items")
    # 4 of 6 order dirt kinds and 5 of 7 line dirt kinds alter a value; the others add rows.
    share = sum(map(abnormal_order, orders)) / len(orders)
    assert 0.6 < share / (DIRTY_RATE * 4 / 6) < 1.4
    share = sum(map(abnormal_item, items)) / len(items)
    assert 0.6 < share / (DIRTY_RATE * 5 / 7) < 1.4
    dup_rows = len(items) - len({values(i, "order_items") for i in items})
    assert 0.5 < dup_rows / len(items) / (DIRTY_RATE / 7) < 1.6


def test_clean_when_rates_zero_has_no_dirt(clean: tuple[Path, SalesGenSummary]) -> None:
    out, _ = clean
    assert not any(map(abnormal_order, read_entity(out, "orders")))
    assert not any(map(abnormal_item, read_entity(out, "order_items")))


def test_dirt_is_added_on_top_of_the_same_truth(
    tmp_path: Path, dirty: tuple[Path, SalesGenSummary]
) -> None:
    """Same seed and late/correction rates without dirt: the same rows, minus the dirt.

    Where one file holds several versions of a key with the same updated_at, the *last* one is
    the true row (the one the dirt-free run wrote), so "later row wins" recovers the truth.
    """
    out, _ = dirty
    gen(tmp_path, dirty_rate=0, **DIRTY)
    for entity, key in (("orders", ("order_id",)), ("order_items", ("order_id", "line_no"))):
        dirty_rows, clean_rows = read_entity(out, entity), read_entity(tmp_path, entity)
        truth = {(r["_folder"], values(r, entity)) for r in clean_rows}
        assert len(truth) == len(clean_rows)
        present = {(r["_folder"], values(r, entity)) for r in dirty_rows}
        lost = len(truth - present) / len(truth)  # rows whose values the dirt altered
        assert 0.5 * DIRTY_RATE * 4 / 7 < lost < 1.5 * DIRTY_RATE * 5 / 7, entity
        last: dict[tuple[Any, ...], Row] = {}
        groups: Counter[tuple[Any, ...]] = Counter()
        for r in dirty_rows:
            k = (r["_folder"], r["updated_at"], *(r[c] for c in key))
            last[k] = r
            groups[k] += 1
        multi = [k for k, n in groups.items() if n > 1]
        assert multi
        by_key = {(r["_folder"], r["updated_at"], *(r[c] for c in key)): r for r in clean_rows}
        for k in multi:
            assert values(last[k], entity) == values(by_key[k], entity)


def first_seen(rows: list[Row], key: str) -> dict[str, date]:
    seen: dict[str, date] = {}
    for r in rows:
        if r[key] and (r[key] not in seen or r["_folder"] < seen[r[key]]):
            seen[r[key]] = r["_folder"]
    return seen


def test_late_deliveries_and_lines_before_their_order(dirty: tuple[Path, SalesGenSummary]) -> None:
    out, summary = dirty
    last = summary.dates[-1]
    orders = read_entity(out, "orders")
    items = read_entity(out, "order_items")
    o_first = first_seen(orders, "order_id")
    delays = [(folder - order_day(oid)).days for oid, folder in o_first.items()]
    assert min(delays) == 0 and max(delays) <= 5
    can_be_late = [d for oid, d in zip(o_first, delays, strict=True) if order_day(oid) < last]
    share = sum(d > 0 for d in can_be_late) / len(can_be_late)
    assert 0.06 < share < 0.14  # late_rate 0.1 (a little lost to clipping at the last day)
    i_first = first_seen(items, "order_id")
    early = [oid for oid, f in i_first.items() if oid in o_first and f < o_first[oid]]
    assert early
    assert all(order_day(oid) <= i_first[oid] for oid in early)


def test_corrections_are_later_versions_in_later_folders(
    dirty: tuple[Path, SalesGenSummary],
) -> None:
    out, _ = dirty
    orders = read_entity(out, "orders")
    items = read_entity(out, "order_items")
    n_orders = DIRTY["days"] * DIRTY["orders_per_day"]

    def versions(
        rows: list[Row], key: tuple[str, ...]
    ) -> dict[tuple[str, ...], dict[datetime, date]]:
        by_key: dict[tuple[str, ...], dict[datetime, date]] = defaultdict(dict)
        for r in rows:
            ts = parse_ts(r["updated_at"])
            if ts is not None and all(r[k] for k in key):
                k = tuple(r[c] for c in key)
                by_key[k][ts] = min(by_key[k].get(ts, r["_folder"]), r["_folder"])
        return by_key

    for rows, key, kind_share in (
        (orders, ("order_id",), 0.6),
        (items, ("order_id", "line_no"), 0.4),
    ):
        multi = {k: v for k, v in versions(rows, key).items() if len(v) > 1}
        expected = DIRTY["correction_rate"] * kind_share * n_orders
        assert 0.6 < len(multi) / expected < 1.4, key
        for first_folders in multi.values():
            folders = [first_folders[ts] for ts in sorted(first_folders)]
            assert folders == sorted(folders)  # a newer version never arrives before an older

    # about a fifth of corrections move created_at to another day 1-3 days away
    moved = {}
    for o in orders:
        day = tokyo_date(o["created_at"])
        if o["order_id"] and day is not None and day != order_day(o["order_id"]):
            moved[o["order_id"]] = abs((day - order_day(o["order_id"])).days)
    expected = DIRTY["correction_rate"] * 0.2 * n_orders
    assert 0.5 < len(moved) / expected < 1.5
    assert set(moved.values()) <= {1, 2, 3}

    cancelled = {
        o["order_id"] for o in orders if o["status"] == "cancelled" and o["order_id"] in moved
    }
    assert len(cancelled) < len(moved)  # moves keep their status
    corrected_status = {
        k[0]
        for k, v in versions(orders, ("order_id",)).items()
        if len({o["status"] for o in orders if o["order_id"] == k[0]}) > 1 and len(v) > 1
    }
    assert corrected_status


def test_customer_and_product_updates_arrive_later(dirty: tuple[Path, SalesGenSummary]) -> None:
    out, _ = dirty
    n = DIRTY["orders_per_day"]
    pools = {"customers": max(50, n * DIRTY["days"] // 8), "products": max(20, n // 5)}
    for entity, key in (("customers", "customer_id"), ("products", "product_id")):
        rows = read_entity(out, entity)
        first = {r[key]: r for r in rows if r["_folder"] == START and r[key]}
        changed = set()
        for r in rows:
            if r["_folder"] == START or r[key] not in first:
                continue
            before, ts = first[r[key]], parse_ts(r["updated_at"])
            old_ts = parse_ts(before["updated_at"])
            if values(r, entity)[1:-1] != values(before, entity)[1:-1]:
                assert ts is None or old_ts is None or ts > old_ts  # updates are newer
                changed.add(r[key])
        expected = round(DIRTY["correction_rate"] * pools[entity])  # each updated once
        assert 0.8 * expected <= len(changed) <= expected, entity


# ---------------------------------------------------------------------------------------------
# Late batch
# ---------------------------------------------------------------------------------------------


def batch_rows(out: Path, entity: str, day: date) -> list[Row]:
    return [r for r in read_entity(out, entity) if r["_folder"] == day]


def test_late_batch_writes_one_folder_of_new_orders(batch: tuple[Path, SalesGenSummary]) -> None:
    out, summary = batch
    day = START + timedelta(days=BASE["days"])
    assert summary.dates == [day] and summary.files == 2
    assert sorted(p.name for p in (out / day.isoformat()).iterdir()) == [
        f"order_items_{day}.csv",
        f"orders_{day}.csv",
    ]
    base_orders = [r for r in read_entity(out, "orders") if r["_folder"] < day]
    base_ids = {r["order_id"] for r in base_orders}
    orders, items = batch_rows(out, "orders", day), batch_rows(out, "order_items", day)
    assert summary.rows["orders"] == len(orders) and summary.rows["order_items"] == len(items)

    new = [o for o in orders if o["order_id"] not in base_ids]
    new_ids = {o["order_id"] for o in new}
    assert len(new_ids) == len(new)
    assert all(int(o["order_id"][-6:]) > BASE["orders_per_day"] for o in new)
    new_items = [i for i in items if i["order_id"] in new_ids]
    assert len(new_items) == 500
    assert {i["order_id"] for i in new_items} == new_ids
    dates = {order_day(o["order_id"]) for o in new}
    assert len(dates) == 2 and all(START <= d < day for d in dates)
    for o in new:
        assert tokyo_date(o["created_at"]) == order_day(o["order_id"])
        assert not abnormal_order(o)
    for i in items:
        assert not abnormal_item(i)


def test_late_batch_corrections_reference_existing_keys_with_later_updated_at(
    batch: tuple[Path, SalesGenSummary],
) -> None:
    out, _ = batch
    day = START + timedelta(days=BASE["days"])
    all_orders, all_items = read_entity(out, "orders"), read_entity(out, "order_items")
    base_o = {r["order_id"]: r for r in all_orders if r["_folder"] < day}  # latest wins
    base_i = {(r["order_id"], r["line_no"]): r for r in all_items if r["_folder"] < day}
    newest = max(
        t
        for r in all_orders + all_items
        if r["_folder"] < day
        if (t := parse_ts(r["updated_at"])) is not None
    )
    orders, items = batch_rows(out, "orders", day), batch_rows(out, "order_items", day)
    corr_o = [o for o in orders if o["order_id"] in base_o]
    corr_i = [i for i in items if (i["order_id"], i["line_no"]) in base_i]
    new_ids = {o["order_id"] for o in orders} - set(base_o)
    assert all(i["order_id"] in new_ids for i in items if i not in corr_i)
    corrected = {o["order_id"] for o in corr_o} | {i["order_id"] for i in corr_i}
    assert len(corrected) == 60 == len(corr_o) + len(corr_i)
    for r in corr_o + corr_i:
        ts = parse_ts(r["updated_at"])
        assert ts is not None and ts > newest and ts.astimezone(JST).date() == day
    late_dates = {order_day(o) for o in new_ids}
    assert not {order_day(o) for o in corrected} & late_dates
    assert len({order_day(o) for o in corrected}) <= 3

    moves = [o for o in corr_o if tokyo_date(o["created_at"]) != order_day(o["order_id"])]
    cancels = [o for o in corr_o if o["status"] == "cancelled" and o not in moves]
    assert cancels and all(norm(base_o[o["order_id"]]["status"]) != "cancelled" for o in cancels)
    assert moves and all(
        1 <= abs((tokyo_date(o["created_at"]) - order_day(o["order_id"])).days) <= 3  # type: ignore[operator]
        for o in moves
    )
    for i in corr_i:
        before = base_i[(i["order_id"], i["line_no"])]
        assert i["product_id"] == before["product_id"]
        assert (i["quantity"], i["unit_price"]) != (before["quantity"], before["unit_price"])
    assert len(cancels) + len(moves) == len(corr_o)


def test_late_batch_needs_no_base_files_and_is_reproducible(
    tmp_path: Path, batch: tuple[Path, SalesGenSummary]
) -> None:
    out, _ = batch
    day = (START + timedelta(days=BASE["days"])).isoformat()
    kw: dict[str, Any] = dict(BASE, lines=500, corrections=60, late_dates=2)
    generate_late_batch(tmp_path / "alone", batch_seed=9, **kw)
    generate_late_batch(tmp_path / "other", batch_seed=10, **kw)
    with_base = {k: v for k, v in digest(out).items() if k.startswith(day)}
    assert digest(tmp_path / "alone") == with_base
    assert digest(tmp_path / "other") != with_base


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_late_batch_other_formats_match_csv(tmp_path: Path, fmt: str) -> None:
    kw: dict[str, Any] = dict(BASE, batch_seed=2, lines=120, corrections=15)
    generate_late_batch(tmp_path / "csv", **kw)
    summary = generate_late_batch(tmp_path / fmt, fmt=fmt, **kw)
    assert summary.rows["order_items"] >= 120
    for entity in ("orders", "order_items"):
        a = [values(r, entity) for r in read_entity(tmp_path / "csv", entity)]
        b = [values(r, entity) for r in read_entity(tmp_path / fmt, entity)]
        assert a == b
