"""Property-based tests (hypothesis) on real warehouses, on every engine.

Each hypothesis example gets its own fresh warehouse (a DuckDB file under a new temp folder, or a
new PostgreSQL database) and its own input folder, both removed afterwards: the function-scoped
pytest fixtures are only used for things that are the same for every example (the engine name, a
clean environment). Example counts are small and per engine so the file stays well under a minute.

The oracles are plain Python (decimal, zoneinfo, unicodedata) over the values the test drew; shukei
itself is only ever the system under test, or (incremental vs full) a second fresh warehouse.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

import pg
from conftest import Warehouse, query, write_entity
from shukei.generate.sales import generate_late_batch, generate_sales
from shukei.project import Project

TOKYO = ZoneInfo("Asia/Tokyo")
CENT = Decimal("0.01")
MARTS = (
    "order_facts",
    "daily_sales",
    "daily_sales_by_region",
    "daily_product_sales",
    "monthly_sales",
    "customer_metrics",
)
VIEWS = ("top_customers", "category_performance", "regional_sales_trend", "weekly_sales_summary")

# Examples per property and engine. A DuckDB `run` costs ~0.6 s here, a PostgreSQL one ~0.3 s
# (plus ~0.25 s to create and drop the database of each example).
EXAMPLES: dict[str, dict[str, int]] = {
    "order": {"duckdb": 3, "postgresql": 3},
    "incremental": {"duckdb": 2, "postgresql": 3},
    "text": {"duckdb": 4, "postgresql": 4},
    "numbers": {"duckdb": 4, "postgresql": 4},
}
# A deeper search on demand: SHUKEI_TEST_PROPERTY_SCALE=20 runs 20 times as many examples.
SCALE = float(os.environ.get("SHUKEI_TEST_PROPERTY_SCALE", "1"))
# Shrinking a failure replays seconds-long examples for minutes: on demand only
# (SHUKEI_TEST_PROPERTY_SHRINK=1); without it a failure reports the example as drawn.
PHASES = (Phase.explicit, Phase.generate) + (
    (Phase.shrink, Phase.explain) if os.environ.get("SHUKEI_TEST_PROPERTY_SHRINK") == "1" else ()
)


def budget(prop: str, engine_name: str) -> Callable[[Any], Any]:
    return settings(
        max_examples=max(1, round(EXAMPLES[prop][engine_name] * SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,
        phases=PHASES,
    )


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No shukei.toml or SHUKEI_* variable leaks into the Projects the examples create."""
    for k in list(os.environ):
        if k.startswith("SHUKEI_") and not k.startswith("SHUKEI_TEST_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)


@contextlib.contextmanager
def fresh_warehouse(engine_name: str) -> Iterator[tuple[Project, Warehouse]]:
    """A Project on a brand-new warehouse, and what `query` reads it by; removed afterwards."""
    if engine_name == "duckdb":
        folder = tempfile.mkdtemp(prefix="shukei-prop-wh-")
        path = Path(folder) / "shukei.duckdb"
        try:
            yield Project(warehouse=f"duckdb:///{path}", lock_timeout=5), path
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    url = pg.create_database()
    try:
        yield Project(warehouse=url, lock_timeout=5), url
    finally:
        pg.drop_database(url)


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="shukei-prop-in-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_ok(project: Project) -> dict[str, Any]:
    rep = project.run("sales").as_dict()
    assert rep["status"] == "success", rep
    return rep


def snapshot(wh: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    """Every table and view of schema marts, full content, sorted (comparable value by value)."""
    names = sorted(
        str(r[0])
        for r in query(
            wh, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'"
        )
    )
    assert set(MARTS) | set(VIEWS) <= set(names), names
    return {n: sorted(query(wh, f"SELECT * FROM marts.{n}"), key=repr) for n in names}


def daily_sales(wh: Warehouse) -> dict[date, tuple[Any, ...]]:
    rows = query(
        wh,
        "SELECT sales_date, order_count, item_count, revenue, customer_count, avg_order_value "
        "FROM marts.daily_sales",
    )
    return {r[0]: tuple(r[1:]) for r in rows}


def avg2(revenue: Decimal, count: int) -> Decimal:
    """revenue / count rounded to 2 places, half away from zero (revenue is never negative)."""
    with localcontext() as ctx:
        ctx.prec = 60
        return (revenue / count).quantize(CENT, rounding=ROUND_HALF_UP)


# ------------------------------------------------------------------------------------------------
# 1 + 2. Ingestion order and incremental runs do not change the marts
# ------------------------------------------------------------------------------------------------

DAYS = [date(2025, 12, 1) + timedelta(days=i) for i in range(4)]
ORDER_IDS = ("O1", "O2", "O3", "O4")
LINE_ORDER_IDS = (*ORDER_IDS, *ORDER_IDS, "O5")  # O5 never arrives: its lines wait forever
CUSTOMER_IDS = ("C1", "C2", "C3")
PRODUCT_IDS = ("P1", "P2", "P3")
# status is lower-cased by staging: "Cancelled" is a cancellation too.
STATUSES = ("paid", "Paid", "paid", "shipped", "pending", "cancelled", "Cancelled", "refunded")
REGIONS = ("east", "west")
VERSION_BASE = datetime(2025, 12, 20, 0, 0)


@dataclass(frozen=True)
class OrderRow:
    order_id: str
    customer_id: str
    status: str
    region: str
    day: date  # business date: created_at is this day's `minute` in Asia/Tokyo
    minute: int
    form: str  # how created_at is spelled: local (no offset), +09:00 or UTC Z

    def created_at(self) -> str:
        local = datetime.combine(self.day, datetime.min.time(), TOKYO) + timedelta(
            minutes=self.minute
        )
        if self.form == "local":
            return local.strftime("%Y-%m-%dT%H:%M:%S")
        if self.form == "+09:00":
            return local.isoformat()
        return local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def counted(self) -> bool:
        return self.status.lower() not in ("cancelled", "refunded")


@dataclass(frozen=True)
class ItemRow:
    order_id: str
    line_no: int
    product_id: str
    quantity: int
    unit_price: Decimal
    bad_quantity: str | None  # "0" or "x": a quarantined row, which must never win

    def valid(self) -> bool:
        return self.bad_quantity is None


@dataclass(frozen=True)
class CustomerRow:
    customer_id: str
    name: str
    region: str


@dataclass(frozen=True)
class ProductRow:
    product_id: str
    name: str
    category: str


Content = OrderRow | ItemRow | CustomerRow | ProductRow


@dataclass(frozen=True)
class Version:
    """One row as delivered: its content and its (globally distinct, except copies) version."""

    content: Content
    version: int  # updated_at = VERSION_BASE + version minutes

    @property
    def updated_at(self) -> str:
        return (VERSION_BASE + timedelta(minutes=self.version)).strftime("%Y-%m-%dT%H:%M:%S")


Batch = list[Version]


def orders_st(days: Sequence[date]) -> st.SearchStrategy[OrderRow]:
    return st.builds(
        OrderRow,
        st.sampled_from(ORDER_IDS),
        st.sampled_from(CUSTOMER_IDS),
        st.sampled_from(STATUSES),
        st.sampled_from(REGIONS),
        st.sampled_from(days),
        st.integers(0, 24 * 60 - 1),
        st.sampled_from(("local", "+09:00", "Z")),
    )


items_st = st.builds(
    ItemRow,
    st.sampled_from(LINE_ORDER_IDS),
    st.integers(1, 2),
    st.sampled_from(PRODUCT_IDS),
    st.integers(1, 5),
    st.integers(0, 5000).map(lambda c: Decimal(c).scaleb(-2)),
    st.one_of(st.none(), st.none(), st.none(), st.sampled_from(("0", "x"))),
)
customers_st = st.builds(
    CustomerRow,
    st.sampled_from(CUSTOMER_IDS),
    st.sampled_from(("Alice", "Bob", "Carol")),
    st.sampled_from(("north", "south")),
)
products_st = st.builds(
    ProductRow,
    st.sampled_from(PRODUCT_IDS),
    st.sampled_from(("Widget", "Gizmo")),
    st.sampled_from(("tools", "toys")),
)


@st.composite
def batch_sets(draw: st.DrawFn) -> list[Batch]:
    """3-5 small batches over 3-4 dates: corrections, cancellations, copies, late lines.

    Every row gets a distinct version (updated_at), drawn independently of its batch, so a later
    batch may bring an older version. The only rows sharing an updated_at are exact copies.
    """
    days = DAYS[: draw(st.integers(3, 4))]
    contents: list[list[Content]] = []
    for _ in range(draw(st.integers(3, 5))):
        rows: list[Content] = []
        rows += draw(st.lists(orders_st(days), min_size=1, max_size=4))
        rows += draw(st.lists(items_st, min_size=1, max_size=5))
        rows += draw(st.lists(customers_st, max_size=1))
        rows += draw(st.lists(products_st, max_size=1))
        contents.append(rows)
    n = sum(len(b) for b in contents)
    versions = iter(draw(st.permutations(range(n))))
    batches = [[Version(c, next(versions)) for c in rows] for rows in contents]
    # Exact copies (same content, same updated_at) of rows into any batch, the same one too.
    every = [v for b in batches for v in b]
    for src, dst in draw(
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, len(batches) - 1)), max_size=3)
    ):
        batches[dst].append(every[src])
    return batches


def write_batch(folder: Path, batch: Batch) -> Path:
    """One folder, one file per entity present."""
    orders, items, customers, products = [], [], [], []
    for v in batch:
        c = v.content
        if isinstance(c, OrderRow):
            orders.append(
                (c.order_id, c.customer_id, c.status, c.region, c.created_at(), v.updated_at)
            )
        elif isinstance(c, ItemRow):
            qty = c.bad_quantity if c.bad_quantity is not None else str(c.quantity)
            items.append(
                (c.order_id, c.line_no, c.product_id, qty, str(c.unit_price), v.updated_at)
            )
        elif isinstance(c, CustomerRow):
            email = f"{c.customer_id.lower()}@example.com"
            customers.append((c.customer_id, c.name, email, c.region, v.updated_at))
        else:
            products.append((c.product_id, c.name, c.category, v.updated_at))
    for entity, rows in (
        ("orders", orders),
        ("order_items", items),
        ("customers", customers),
        ("products", products),
    ):
        if rows:
            write_entity(folder, entity, rows)
    return folder


def oracle_daily_sales(batches: Sequence[Batch]) -> dict[date, tuple[Any, ...]]:
    """daily_sales from the drawn rows: latest valid version per key, counted orders only."""
    latest_orders: dict[str, Version] = {}
    latest_items: dict[tuple[str, int], Version] = {}
    for v in (v for b in batches for v in b):
        c = v.content
        if isinstance(c, OrderRow):
            cur = latest_orders.get(c.order_id)
            if cur is None or v.version > cur.version:
                latest_orders[c.order_id] = v
        elif isinstance(c, ItemRow) and c.valid():
            key = (c.order_id, c.line_no)
            cur = latest_items.get(key)
            if cur is None or v.version > cur.version:
                latest_items[key] = v
    per_day: dict[date, list[tuple[str, int, Decimal]]] = {}
    for oid, ov in latest_orders.items():
        o = ov.content
        assert isinstance(o, OrderRow)
        lines = [iv.content for (i_oid, _), iv in latest_items.items() if i_oid == oid]
        if not o.counted() or not lines:
            continue
        qty = sum(li.quantity for li in lines if isinstance(li, ItemRow))
        revenue = sum(
            (li.quantity * li.unit_price for li in lines if isinstance(li, ItemRow)), Decimal(0)
        )
        per_day.setdefault(o.day, []).append((o.customer_id, qty, revenue))
    out: dict[date, tuple[Any, ...]] = {}
    for d, facts in per_day.items():
        revenue = sum((f[2] for f in facts), Decimal(0))
        out[d] = (
            len(facts),
            sum(f[1] for f in facts),
            revenue,
            len({f[0] for f in facts}),
            avg2(revenue, len(facts)),
        )
    return out


def test_ingestion_order_does_not_change_the_marts(engine_name: str, clean_env: None) -> None:
    """Any order of ingesting the same batches, with or without runs in between, gives the same
    marts and views as ingesting them in their original order and running once; daily_sales also
    equals a plain-Python oracle (latest version per key, counted orders, revenue per date).

    Every version of a key has a DISTINCT updated_at: when two different contents of one key tie
    on updated_at, the later ingestion legitimately wins, so such a tie WOULD depend on the order
    of ingestion. The only ties drawn are exact copies (duplicates), which must not matter.
    """

    @budget("order", engine_name)
    @given(
        batches=batch_sets(),
        data=st.data(),
    )
    def prop(batches: list[Batch], data: st.DataObject) -> None:
        n = len(batches)
        perm = data.draw(st.permutations(range(n)), label="ingestion order")
        mode = data.draw(st.sampled_from(("every", "end", "some")), label="runs")
        if mode == "some":
            runs = data.draw(st.lists(st.booleans(), min_size=n, max_size=n), label="run after")
        else:
            runs = [mode == "every"] * n
        with scratch() as inputs:
            folders = [write_batch(inputs / f"batch{i}", b) for i, b in enumerate(batches)]
            with fresh_warehouse(engine_name) as (ref, ref_wh):
                for f in folders:
                    ref.ingest("sales", [f])
                run_ok(ref)
                expected = snapshot(ref_wh)
                assert daily_sales(ref_wh) == oracle_daily_sales(batches)
            with fresh_warehouse(engine_name) as (proj, wh):
                for i, run_after in zip(perm, runs, strict=True):
                    proj.ingest("sales", [folders[i]])
                    if run_after:
                        run_ok(proj)
                run_ok(proj)
                got = snapshot(wh)
                assert daily_sales(wh) == oracle_daily_sales(batches)
        assert got == expected

    prop()


@st.composite
def generated_history(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "seed": draw(st.integers(0, 10_000), label="seed"),
        "days": draw(st.integers(3, 4), label="days"),
        "orders_per_day": draw(st.integers(2, 5), label="orders_per_day"),
        "late_rate": draw(st.sampled_from((0.0, 0.3, 0.6)), label="late_rate"),
        "correction_rate": draw(st.sampled_from((0.0, 0.3, 0.5)), label="correction_rate"),
        "dirty_rate": draw(st.sampled_from((0.0, 0.1, 0.3)), label="dirty_rate"),
        "late_batch": draw(st.one_of(st.none(), st.integers(0, 100)), label="late batch seed"),
    }


def test_incremental_runs_equal_one_full_build(engine_name: str, clean_env: None) -> None:
    """Delivery folders of the (dirty, late, corrected) generator ingested one by one with runs at
    random points give the same marts and views as a fresh warehouse that ingests the same files
    (folder by folder, or all in one batch: later file path = later folder) and runs once.
    """

    @budget("incremental", engine_name)
    @given(history=generated_history(), data=st.data())
    def prop(history: dict[str, Any], data: st.DataObject) -> None:
        start = date(2025, 11, 28)  # the dates cross a month end
        shape = {k: history[k] for k in ("days", "orders_per_day", "seed")}
        with scratch() as out:
            generate_sales(
                out,
                start=start,
                late_rate=history["late_rate"],
                correction_rate=history["correction_rate"],
                dirty_rate=history["dirty_rate"],
                **shape,
            )
            if history["late_batch"] is not None:
                generate_late_batch(
                    out,
                    start=start,
                    batch_seed=history["late_batch"],
                    lines=4,
                    corrections=3,
                    late_dates=2,
                    **shape,
                )
            folders = sorted(p for p in out.iterdir() if p.is_dir())
            runs = data.draw(
                st.lists(st.booleans(), min_size=len(folders), max_size=len(folders)),
                label="run after folder",
            )
            one_batch = data.draw(st.booleans(), label="full build ingests in one batch")
            with fresh_warehouse(engine_name) as (proj, wh):
                for folder, run_after in zip(folders, runs, strict=True):
                    proj.ingest("sales", [folder])
                    if run_after:
                        run_ok(proj)
                run_ok(proj)
                incremental = snapshot(wh)
            with fresh_warehouse(engine_name) as (full, full_wh):
                if one_batch:
                    full.ingest("sales", [out])
                else:
                    for folder in folders:
                        full.ingest("sales", [folder])
                run_ok(full)
                rebuilt = snapshot(full_wh)
        assert incremental["daily_sales"], "the generator's history has counted orders"
        assert incremental == rebuilt

    prop()


# ------------------------------------------------------------------------------------------------
# 3. Round trips: text, decimals, integers, timestamps
# ------------------------------------------------------------------------------------------------

# Characters worth drawing often: CSV syntax, escapes, line breaks, spaces shukei trims and spaces
# it does not, full-width/half-width forms, ligatures, circled digits, combining marks, emoji.
SPECIAL_CHARS = (
    '"',
    "'",
    ",",
    ";",
    "\\",
    ".",
    "\n",
    "\r",
    "\t",
    " ",
    "\u3000",  # ideographic space: NFKC -> " ", then trimmed at the ends
    "\u00a0",  # no-break space: NFKC -> " "
    "\u2028",  # line separator: not in shukei's trim set
    "\x0b",
    "Ａ",
    "ｶ",
    "ﾞ",
    "①",
    "ﬁ",
    "㍿",
    "e",
    "\u0301",  # combining acute: "e" + it composes to "é"
    "東",
    "😀",
    "👍",
    "\U0001f3fd",  # skin-tone modifier
    "\ufeff",
)
# Unassigned code points (Cn, per Python's Unicode tables) are left out: a character assigned in
# a later Unicode version may carry a compatibility mapping the engine knows and Python does not.
alphabet = st.one_of(
    st.sampled_from(SPECIAL_CHARS),
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cn"), exclude_characters="\x00"),
)
# The empty string is not drawn: the CSV writer writes it as an empty field, which reads as NULL.
texts = st.text(alphabet, min_size=1, max_size=12)


def staged(s: str) -> str | None:
    """shukei's text rule: NFKC, then strip space, tab, LF, CR at both ends (engines/base.trim);
    empty -> NULL."""
    return unicodedata.normalize("NFKC", s).strip(" \t\r\n") or None


NASTY = [
    "a\n\\.\nb",  # PostgreSQL's COPY end-of-data marker on a line of its own, inside quotes
    "\\.",
    " ",
    "\u3000全角\u3000",
    '"',
    '😀,"x"\r\n',
    "\r",
    "ｶﾞｷﾞ",
    "\\N",
    "NULL",
]


def test_text_survives_raw_exactly_and_staging_normalised(
    engine_name: str, clean_env: None
) -> None:
    """A text value reaches raw exactly as written, and staging/marts as NFKC + trimmed (NULL when
    nothing is left): customers.name (staging, customer_metrics) and orders.region (staging,
    order_facts)."""

    @budget("text", engine_name)
    @example(values=NASTY)
    @given(values=st.lists(texts, min_size=1, max_size=8))
    def prop(values: list[str]) -> None:
        ids = [f"C{i}" for i in range(len(values))]
        with scratch() as folder, fresh_warehouse(engine_name) as (proj, wh):
            write_entity(
                folder,
                "customers",
                [
                    (c, s, "a@example.com", "east", "2025-12-01T00:00:00")
                    for c, s in zip(ids, values, strict=True)
                ],
            )
            write_entity(
                folder,
                "orders",
                [
                    (f"O{c}", c, "paid", s, "2025-12-01T10:00:00", "2025-12-01T10:00:00")
                    for c, s in zip(ids, values, strict=True)
                ],
            )
            write_entity(
                folder,
                "order_items",
                [(f"O{c}", 1, "P1", 1, "1.00", "2025-12-01T10:00:00") for c in ids],
            )
            proj.ingest("sales", [folder])
            written = dict(zip(ids, values, strict=True))
            assert dict(query(wh, "SELECT customer_id, name FROM raw.customers")) == written
            assert dict(query(wh, "SELECT customer_id, region FROM raw.orders")) == written
            run_ok(proj)
            want = {c: staged(s) for c, s in written.items()}
            assert dict(query(wh, "SELECT customer_id, name FROM staging.customers")) == want
            assert dict(query(wh, "SELECT customer_id, region FROM staging.orders")) == want
            assert dict(query(wh, "SELECT customer_id, region FROM marts.order_facts")) == want
            assert (
                dict(query(wh, "SELECT customer_id, customer_name FROM marts.customer_metrics"))
                == want
            )

    prop()


@dataclass(frozen=True)
class OneLineOrder:
    quantity: int
    quantity_text: str
    unit_price: Decimal
    price_text: str
    wall: datetime  # the wall-clock time written (naive)
    offset: int | None  # minutes east of UTC, or None: no offset, Asia/Tokyo local time
    created_at: str

    def instant(self) -> datetime:
        tz = TOKYO if self.offset is None else timezone(timedelta(minutes=self.offset))
        return self.wall.replace(tzinfo=tz)

    def sales_date(self) -> date:
        return self.instant().astimezone(TOKYO).date()


@st.composite
def one_line_orders(draw: st.DrawFn) -> OneLineOrder:
    q = draw(st.integers(1, 10**9))
    q_text = draw(st.sampled_from((str(q), f"+{q}", f"{q:012d}", f" {q} ")))
    price = draw(
        st.decimals(min_value=0, max_value=Decimal("99999999.99"), places=2).map(
            lambda d: d.quantize(CENT)
        )
    )
    full = format(price, "f")  # always 2 places: 12.30
    short = full.rstrip("0").rstrip(".") if "." in full else full  # 12.3, 12, 0
    p_text = draw(st.sampled_from((full, short, "+" + full, "0" + full)))
    wall = draw(
        st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2037, 12, 31, 23, 59))
    )
    if not draw(st.booleans()):
        wall = wall.replace(microsecond=0)
    offset = draw(st.one_of(st.none(), st.integers(-12 * 60, 14 * 60)))
    sep = draw(st.sampled_from(("T", " ")))
    text = wall.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + (
        f".{wall.microsecond:06d}" if wall.microsecond else ""
    )
    if offset is not None:
        sign = "+" if offset >= 0 else "-"
        hh, mm = divmod(abs(offset), 60)
        forms = [f"{sign}{hh:02d}:{mm:02d}", f"{sign}{hh:02d}{mm:02d}"]
        if mm == 0:
            forms.append(f"{sign}{hh:02d}")
        if offset == 0:
            forms.append("Z")
        text += draw(st.sampled_from(forms))
    return OneLineOrder(q, q_text, price, p_text, wall, offset, text)


def test_numbers_and_timestamps_survive_to_the_marts(engine_name: str, clean_env: None) -> None:
    """Integer quantities and 2-place decimals reach staging and the marts exactly (a one-line
    order's revenue = quantity x unit_price in Python Decimal), and a created_at with any offset
    from -12:00 to +14:00 (or none: Tokyo local time) gives sales_date = that instant's date in
    Asia/Tokyo (zoneinfo)."""

    @budget("numbers", engine_name)
    @given(orders=st.lists(one_line_orders(), min_size=1, max_size=8))
    def prop(orders: list[OneLineOrder]) -> None:
        ids = [f"O{i}" for i in range(len(orders))]
        with scratch() as folder, fresh_warehouse(engine_name) as (proj, wh):
            write_entity(
                folder,
                "orders",
                [
                    (oid, f"C{i % 3}", "paid", "east", o.created_at, "2025-12-01T00:00:00")
                    for i, (oid, o) in enumerate(zip(ids, orders, strict=True))
                ],
            )
            write_entity(
                folder,
                "order_items",
                [
                    (oid, 1, "P1", o.quantity_text, o.price_text, "2025-12-01T00:00:00")
                    for oid, o in zip(ids, orders, strict=True)
                ],
            )
            proj.ingest("sales", [folder])
            raw = query(wh, "SELECT order_id, quantity, unit_price FROM raw.order_items")
            assert {r[0]: (r[1], r[2]) for r in raw} == {
                oid: (o.quantity_text, o.price_text) for oid, o in zip(ids, orders, strict=True)
            }
            run_ok(proj)
            items = query(wh, "SELECT order_id, quantity, unit_price FROM staging.order_items")
            assert {r[0]: (r[1], r[2]) for r in items} == {
                oid: (o.quantity, o.unit_price) for oid, o in zip(ids, orders, strict=True)
            }
            staged_orders = query(wh, "SELECT order_id, created_at, sales_date FROM staging.orders")
            assert {r[0]: (r[1], r[2]) for r in staged_orders} == {
                oid: (o.instant(), o.sales_date()) for oid, o in zip(ids, orders, strict=True)
            }
            facts = query(
                wh,
                "SELECT order_id, sales_date, line_count, item_count, revenue "
                "FROM marts.order_facts",
            )
            with localcontext() as ctx:
                ctx.prec = 60
                assert {r[0]: tuple(r[1:]) for r in facts} == {
                    oid: (o.sales_date(), 1, o.quantity, o.quantity * o.unit_price)
                    for oid, o in zip(ids, orders, strict=True)
                }
                per_day: dict[date, list[tuple[str, int, Decimal]]] = {}
                for i, o in enumerate(orders):
                    per_day.setdefault(o.sales_date(), []).append(
                        (f"C{i % 3}", o.quantity, o.quantity * o.unit_price)
                    )
                want = {}
                for d, fs in per_day.items():
                    revenue = sum((f[2] for f in fs), Decimal(0))
                    want[d] = (
                        len(fs),
                        sum(f[1] for f in fs),
                        revenue,
                        len({f[0] for f in fs}),
                        avg2(revenue, len(fs)),
                    )
            assert daily_sales(wh) == want

    prop()
