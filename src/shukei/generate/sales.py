"""Vectorised, reproducible generator of realistic *dirty* sales source files.

Why: the pipeline has to cope with files that arrive late, get corrected, repeat themselves and
carry garbage.  Hand-written fixtures never cover all of that at realistic volume, so this module
fabricates it: four entities (``customers``, ``products``, ``orders``, ``order_items``) delivered
as date-partitioned folders ``out/YYYY-MM-DD/<entity>_YYYY-MM-DD.<ext>``, where the folder date
is the day a file was *delivered* (not the business date of its rows).

How it stays fast and reproducible:

* Every random decision comes from ``numpy.random.default_rng`` seeded with a
  ``SeedSequence(seed, spawn_key=(purpose, ...))`` — the same mechanism as
  ``SeedSequence(seed).spawn`` but addressable, so a stream can be re-created on its own.  The
  "truth" of a business day (its orders and lines) uses a stream keyed by that day only and never
  depends on the dirt/late/correction rates.  That is what lets :func:`generate_late_batch`
  rebuild any existing order without reading files, and makes identical arguments give
  byte-identical files.
* Work is columnar: numbers are generated as numpy arrays per business day, rows are routed to
  delivery days with a sort + slice, and each delivery file is rendered as whole pyarrow string
  columns (timestamps via lookup tables, ids via pyarrow compute) and written with pyarrow.
  Python loops run over days, files, dirt kinds or characters — never over rows.
* Only a few days of rows are held in memory at a time (a row is delivered on or after its
  business day), so memory stays flat for long ranges.

All written values are strings (CSV text, Parquet ``string`` columns, JSON strings or null) so
that dirty values survive every format unchanged.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from concurrent.futures import Future

    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

    Arr: TypeAlias = npt.NDArray[Any]
    Cols: TypeAlias = dict[str, Arr]

__all__ = [
    "CATEGORIES",
    "COLUMNS",
    "DIRT_KINDS",
    "ENTITIES",
    "FORMATS",
    "REGIONS",
    "STATUSES",
    "SalesGenSummary",
    "generate_late_batch",
    "generate_sales",
]

# --------------------------------------------------------------------------------------------
# Contract constants (shared with the pipeline's expectations)
# --------------------------------------------------------------------------------------------

FORMATS: tuple[str, ...] = ("csv", "parquet", "jsonl")
ENTITIES: tuple[str, ...] = ("customers", "products", "orders", "order_items")
COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id", "name", "email", "region", "updated_at"),
    "products": ("product_id", "name", "category", "updated_at"),
    "orders": ("order_id", "customer_id", "status", "region", "created_at", "updated_at"),
    "order_items": ("order_id", "line_no", "product_id", "quantity", "unit_price", "updated_at"),
}
REGIONS: tuple[str, ...] = ("東京", "大阪", "名古屋", "福岡", "札幌", "仙台", "広島")
#: Canonical categories are lower case; files carry them title-cased (``Electronics``).
CATEGORIES: tuple[str, ...] = (
    "electronics",
    "books",
    "home",
    "fashion",
    "food",
    "toys",
    "sports",
)
STATUSES: tuple[str, ...] = ("pending", "paid", "shipped", "delivered", "cancelled", "refunded")

#: Dirt kinds per entity.  A dirty row gets exactly one kind; the first two add rows
#: (an exact copy, or stale versions with the *same* updated_at placed before the row).
DIRT_KINDS: dict[str, tuple[str, ...]] = {
    "customers": (
        "duplicate",
        "same_updated_at",
        "fullwidth_name",
        "invalid_email",
        "region_padding",
        "hostile_text",
        "bad_timestamp",
        "missing_key",
    ),
    "products": (
        "duplicate",
        "same_updated_at",
        "fullwidth_name",
        "category_case",
        "hostile_text",
        "bad_timestamp",
        "missing_key",
    ),
    "orders": (
        "duplicate",
        "same_updated_at",
        "status_case",
        "region_padding",
        "bad_timestamp",
        "missing_key",
    ),
    "order_items": (
        "duplicate",
        "same_updated_at",
        "bad_number",
        "negative_number",
        "zero_quantity",
        "bad_timestamp",
        "missing_key",
    ),
}

_EXT = {"csv": "csv", "parquet": "parquet", "jsonl": "jsonl"}

_REGION_P = (0.30, 0.20, 0.12, 0.12, 0.10, 0.08, 0.08)
_STATUS_P = (0.08, 0.25, 0.25, 0.35, 0.05, 0.02)  # ~5% cancelled, ~2% refunded
_LINES_P = (0.20, 0.30, 0.25, 0.15, 0.10)  # 1..5 lines, mean 2.65
_QTY_P = (0.50, 0.25, 0.12, 0.08, 0.05)
# Tokyo hour-of-day weights: evening peak up to midnight, a tail after midnight.  About 10% of
# orders fall in 23:00-23:59 (naive-as-UTC readings move them to the next day) and about 15%
# before 09:00 (their UTC date is the previous day).
_HOUR_W = (4, 3, 2, 1, 1, 1, 1, 2, 3, 4, 5, 5, 7, 6, 5, 5, 5, 6, 7, 8, 9, 10, 11, 12)
# Timestamp spellings: 0 = local time + "+09:00", 1 = UTC + "Z", 2 = local time, no offset.
_FORM_P = (0.8, 0.1, 0.1)
_FORM_Z = 1
_JST = 9 * 3600
_DAY = 86400
_LAST_CREATED_SOD = _DAY - 60  # created_at < 23:59:00 leaves room for later versions same day
# Status a correction moves to (pending->paid->shipped->delivered->refunded, re-instatement).
_NEXT_STATUS = (1, 2, 3, 5, 1, 3)
_CANCELLED = 4
_EARLY_ITEMS_SHARE = 0.25  # of late orders: their lines arrive one day before the order
_DUP_SHIFT = (0, 0, 1, 2)  # exact duplicates: same file (half) or 1-2 files later

_FAMILY = (
    ("佐藤", "Sato"),
    ("鈴木", "Suzuki"),
    ("高橋", "Takahashi"),
    ("田中", "Tanaka"),
    ("伊藤", "Ito"),
    ("渡辺", "Watanabe"),
    ("山本", "Yamamoto"),
    ("中村", "Nakamura"),
    ("小林", "Kobayashi"),
    ("加藤", "Kato"),
    ("吉田", "Yoshida"),
    ("山田", "Yamada"),
    ("佐々木", "Sasaki"),
    ("山口", "Yamaguchi"),
    ("松本", "Matsumoto"),
    ("井上", "Inoue"),
)
_GIVEN = (
    ("健太", "Kenta"),
    ("翔太", "Shota"),
    ("大輔", "Daisuke"),
    ("陽菜", "Hina"),
    ("結衣", "Yui"),
    ("美咲", "Misaki"),
    ("蓮", "Ren"),
    ("葵", "Aoi"),
    ("拓海", "Takumi"),
    ("さくら", "Sakura"),
    ("悠斗", "Yuto"),
    ("花子", "Hanako"),
    ("太郎", "Taro"),
    ("愛", "Ai"),
)
_ROMAJI_SHARE = 0.2
_DOMAINS = ("example.jp", "example.com", "mail.example.co.jp", "example.ne.jp")
_BRANDS = ("Sakura", "Fuji", "Kaze", "Hoshi", "Nami", "Tsuki", "Yama", "Mori")
_NOUNS = (  # five per category, in CATEGORIES order
    ("USB-C Cable 2m", "Wireless Earbuds", "Mobile Battery 10000mAh", "LED Desk Lamp", "Watch"),
    ("Paperback Novel", "Cookbook", "Manga Vol.3", "Travel Guide", "Kanji Workbook"),
    ("Ceramic Mug", "Bath Towel", "Storage Box", "Rice Cooker", "Cushion Cover"),
    ("Cotton T-Shirt", "Denim Jacket", "Wool Scarf", "Canvas Sneakers", "Leather Belt"),
    ("Green Tea 100g", "Rice Crackers", "Instant Ramen 5pk", "Matcha Cookies", "Soy Sauce 1L"),
    ("Building Blocks", "Puzzle 1000pc", "Plush Shiba", "RC Car", "Card Game"),
    ("Yoga Mat", "Running Shoes", "Tennis Balls 3pk", "Water Bottle 1L", "Dumbbell 5kg"),
)

_PADS = ("", " ", "  ", "\u3000")
_HOSTILE = (
    "x'); DROP TABLE orders; --",
    'Robert"); DROP TABLE customers; --',
    'O\'Brien, "Bobby"',
    "first line\nsecond line",
    "comma, separated, value",
    "tab\there and\r\nCRLF",
    "<script>alert('x')</script>",
    'back\\slash "quoted"',
    "1' OR '1'='1",
)
_BAD_TIMESTAMPS = (
    "2025-13-45T99:00:00",
    "yesterday",
    "",
    "2025/12/03 25:61",
    "31/12/2025 10:00",
    "2025-02-30T10:00:00+09:00",
    "not a date",
    "2025-12-03T10:00:00+25:00",
)
_BAD_NUMBERS = ("12,5", "abc", "", "1.2.3", "¥1980", "five", "--2", "1e")

# Stream purposes for SeedSequence spawn keys.
_K_CUSTOMERS, _K_PRODUCTS, _K_DAY, _K_LATE, _K_CORR, _K_PRESENT, _K_UPDATES, _K_BATCH = range(1, 9)


@dataclass(frozen=True)
class SalesGenSummary:
    """What a generator call wrote: folder, file count, rows per entity, delivery dates."""

    out: Path
    files: int
    rows: dict[str, int]  # entity -> rows written (all files, incl. duplicates and dirty rows)
    dates: list[date]


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def generate_sales(
    out: Path,
    *,
    start: date,
    days: int,
    orders_per_day: int,
    seed: int,
    late_rate: float = 0.02,
    correction_rate: float = 0.02,
    dirty_rate: float = 0.01,
    fmt: str = "csv",
) -> SalesGenSummary:
    """Write ``days`` delivery folders of sales data under ``out``.

    Orders are ``O{YYYYMMDD}-{n:06d}`` with ``n = 1..orders_per_day`` for every business day
    ``start .. start+days-1`` (Asia/Tokyo).  ``late_rate`` of the orders (with their lines) is
    delivered 1-5 days late (at most on the last day) and a quarter of those have their lines
    arrive one day before the order; ``correction_rate`` of the orders get a later version
    (status change, changed line quantity/price, or — one in five — created_at moved 1-3 days);
    the same share of customers/products get an update in a later folder; ``dirty_rate`` of all
    rows get one kind of :data:`DIRT_KINDS`.  All rates 0 gives clean, on-time, unique data.
    Existing files with the same names are overwritten; nothing else under ``out`` is touched.
    """
    _check_fmt(fmt)
    _check_shape(days, orders_per_day, seed)
    for name, rate in (
        ("late_rate", late_rate),
        ("correction_rate", correction_rate),
        ("dirty_rate", dirty_rate),
    ):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {rate!r}")

    import numpy as np

    base = _Base.create(start, days, orders_per_day, seed)
    last = days - 1

    customers = _present(
        _customer_rows(base, correction_rate),
        _rng(seed, _K_PRESENT, 0, 0),
        ts_fields=("upd",),
        dirty_rate=dirty_rate,
        n_kinds=len(DIRT_KINDS["customers"]),
        decoy=_decoy_customer,
        last=last,
    )
    products = _present(
        _product_rows(base, correction_rate),
        _rng(seed, _K_PRESENT, 1, 0),
        ts_fields=("upd",),
        dirty_rate=dirty_rate,
        n_kinds=len(DIRT_KINDS["products"]),
        decoy=_decoy_product,
        last=last,
    )
    c_bounds = np.searchsorted(customers["deliv"], np.arange(days + 1))
    p_bounds = np.searchsorted(products["deliv"], np.arange(days + 1))

    order_buckets = _Buckets()
    item_buckets = _Buckets()
    with _Writer(Path(out), fmt) as writer:
        for i in range(days):
            orders, items = _day_rows(base, i, late_rate, correction_rate)
            order_buckets.add(
                _present(
                    orders,
                    _rng(seed, _K_PRESENT, 2, i),
                    ts_fields=("created", "upd"),
                    dirty_rate=dirty_rate,
                    n_kinds=len(DIRT_KINDS["orders"]),
                    decoy=_decoy_order,
                    last=last,
                )
            )
            item_buckets.add(
                _present(
                    items,
                    _rng(seed, _K_PRESENT, 3, i),
                    ts_fields=("upd",),
                    dirty_rate=dirty_rate,
                    n_kinds=len(DIRT_KINDS["order_items"]),
                    decoy=_decoy_item,
                    last=last,
                )
            )
            day = start + timedelta(days=i)
            if c_bounds[i + 1] > c_bounds[i]:
                part = _slice(customers, int(c_bounds[i]), int(c_bounds[i + 1]))
                writer.write("customers", day, _render_customers(part))
            if p_bounds[i + 1] > p_bounds[i]:
                part = _slice(products, int(p_bounds[i]), int(p_bounds[i + 1]))
                writer.write("products", day, _render_products(part))
            writer.write("orders", day, _render_orders(order_buckets.pop(i), base))
            writer.write("order_items", day, _render_items(item_buckets.pop(i), base))

    return SalesGenSummary(
        out=Path(out),
        files=writer.files,
        rows=writer.rows,
        dates=[start + timedelta(days=i) for i in range(days)],
    )


def generate_late_batch(
    out: Path,
    *,
    start: date,
    days: int,
    orders_per_day: int,
    seed: int,
    batch_seed: int,
    lines: int = 5000,
    corrections: int = 300,
    late_dates: int = 3,
    fmt: str = "csv",
) -> SalesGenSummary:
    """Write one extra delivery folder (``start + days``) of late orders and corrections.

    For the base data of the same ``start, days, orders_per_day, seed`` (never read — it is
    re-derived from the same seeded streams), the folder holds exactly ``lines`` clean order lines
    in new orders created on ``late_dates`` distinct old dates (picked by ``batch_seed``; order
    numbers above ``orders_per_day``), plus ``corrections`` corrected existing orders on a few
    other old dates (fewer only if the dates run out of candidates): new versions with an
    updated_at on the delivery day, later than anything in the base folders, of which ~40% change
    one line's quantity or unit_price (an ``order_items`` row), ~40% cancel the order and ~20%
    move created_at 1-3 days (``orders`` rows).  Corrections pick orders the base generator
    never corrects as long as its ``correction_rate`` is at most 0.5.
    """
    _check_fmt(fmt)
    _check_shape(days, orders_per_day, seed)
    if batch_seed < 0:
        raise ValueError(f"batch_seed must be >= 0, got {batch_seed}")
    if lines < 0 or corrections < 0:
        raise ValueError(f"lines and corrections must be >= 0, got {lines} and {corrections}")
    if late_dates < 1:
        raise ValueError(f"late_dates must be >= 1, got {late_dates}")

    import numpy as np

    base = _Base.create(start, days, orders_per_day, seed)
    rng = _rng(seed, _K_BATCH, batch_seed)
    n_late = min(late_dates, days)
    late_days = np.sort(rng.choice(days, size=n_late, replace=False))

    new_orders, new_items = _batch_new_orders(base, rng, late_days, lines)
    corr_orders, corr_items = _batch_corrections(base, rng, late_days, corrections)
    orders = _concat([new_orders, corr_orders])
    items = _concat([new_items, corr_items])
    for cols, fields in ((orders, ("created", "upd")), (items, ("upd",))):
        n = len(cols["deliv"])
        for f in fields:
            cols["form_" + f] = rng.choice(3, size=n, p=_FORM_P)
        cols["dirt"] = np.zeros(n, np.int64)
        cols["dv"] = np.zeros(n, np.int64)

    day = start + timedelta(days=days)
    with _Writer(Path(out), fmt) as writer:
        writer.write("orders", day, _render_orders(orders, base))
        writer.write("order_items", day, _render_items(items, base))
    return SalesGenSummary(out=Path(out), files=writer.files, rows=writer.rows, dates=[day])


# --------------------------------------------------------------------------------------------
# Validation and small helpers
# --------------------------------------------------------------------------------------------


def _check_fmt(fmt: str) -> None:
    """Reject unknown output formats before anything is written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}")


def _check_shape(days: int, orders_per_day: int, seed: int) -> None:
    """Reject sizes and seeds the generator cannot honour (SeedSequence needs seed >= 0)."""
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if orders_per_day < 1:
        raise ValueError(f"orders_per_day must be >= 1, got {orders_per_day}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")


def _rng(seed: int, *key: int) -> np.random.Generator:
    """Independent, re-creatable random stream for ``seed`` and a purpose key."""
    import numpy as np

    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _take(cols: Cols, idx: Arr) -> Cols:
    """Row subset (copy) of a column dict."""
    return {k: v[idx] for k, v in cols.items()}


def _slice(cols: Cols, lo: int, hi: int) -> Cols:
    """Contiguous row range of a column dict (views)."""
    return {k: v[lo:hi] for k, v in cols.items()}


def _concat(parts: list[Cols]) -> Cols:
    """Stack column dicts with the same keys."""
    import numpy as np

    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _hour_p() -> list[float]:
    total = float(sum(_HOUR_W))
    return [w / total for w in _HOUR_W]


def _draw_tod(rng: np.random.Generator, n: int) -> Arr:
    """Seconds after Tokyo midnight for ``n`` orders, following the hour profile."""
    import numpy as np

    hour = rng.choice(24, size=n, p=_hour_p())
    width = np.where(hour == 23, 3600 - (_DAY - _LAST_CREATED_SOD), 3600)
    return hour * 3600 + np.floor(rng.random(n) * width).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Base truth: customers, products, and one business day of orders + lines
# --------------------------------------------------------------------------------------------


@dataclass
class _Base:
    """Rate-independent truth shared by the main generator and the late batch."""

    start: date
    days: int
    n: int  # orders per day
    seed: int
    day0: int  # epoch seconds of start 00:00 Asia/Tokyo
    ymd: Arr  # YYYYMMDD as an integer, per business day index
    cust: Cols
    prod: Cols

    @staticmethod
    def create(start: date, days: int, n: int, seed: int) -> _Base:
        """Derive customers and products (numeric columns) for the given shape and seed."""
        import numpy as np

        day0 = (start - date(1970, 1, 1)).days * _DAY - _JST
        n_cust = max(50, n * days // 8)
        n_prod = min(5000, max(20, n // 5))

        rng = _rng(seed, _K_CUSTOMERS)
        cust: Cols = {
            "idx": np.arange(1, n_cust + 1, dtype=np.int64),
            "fam": rng.integers(0, len(_FAMILY), size=n_cust),
            "giv": rng.integers(0, len(_GIVEN), size=n_cust),
            "romaji": (rng.random(n_cust) < _ROMAJI_SHARE).astype(np.int64),
            "dom": rng.integers(0, len(_DOMAINS), size=n_cust),
            "region": rng.choice(len(REGIONS), size=n_cust, p=_REGION_P),
            "upd": day0 - rng.integers(3600, 30 * _DAY, size=n_cust),
        }

        rng = _rng(seed, _K_PRODUCTS)
        cat = rng.integers(0, len(CATEGORIES), size=n_prod)
        yen = np.exp(rng.uniform(np.log(100.0), np.log(20000.0), size=n_prod))
        yen = np.round(yen / 10.0).astype(np.int64) * 10
        yen = np.where((yen >= 1000) & (rng.random(n_prod) < 0.4), yen - 20, yen)  # 1980-style
        prod: Cols = {
            "idx": np.arange(1, n_prod + 1, dtype=np.int64),
            "cat": cat,
            "noun": cat * 5 + rng.integers(0, 5, size=n_prod),
            "brand": rng.integers(0, len(_BRANDS), size=n_prod),
            "model": rng.integers(1, 1000, size=n_prod),
            "price": np.clip(yen, 100, 20000),
            "upd": day0 - rng.integers(3600, 30 * _DAY, size=n_prod),
        }
        ymd = np.array([int(f"{start + timedelta(days=i):%Y%m%d}") for i in range(days)])
        return _Base(start, days, n, seed, day0, ymd, cust, prod)

    def day_start(self, i: Arr | int) -> Arr | int:
        """Epoch seconds of Tokyo midnight of business day index ``i``."""
        return self.day0 + i * _DAY


def _draw_order_attrs(rng: np.random.Generator, b: _Base, n: int) -> Cols:
    """Customer, region, status and line count for ``n`` new orders."""
    import numpy as np

    n_cust = len(b.cust["idx"])
    cust = np.floor(n_cust * rng.random(n) ** 1.3).astype(np.int64)  # some customers buy more
    other = rng.random(n) < 0.1  # ship to another region now and then
    region = np.where(other, rng.integers(0, len(REGIONS), size=n), b.cust["region"][cust])
    status = rng.choice(len(STATUSES), size=n, p=_STATUS_P)
    k = rng.choice(len(_LINES_P), size=n, p=_LINES_P) + 1
    return {"cust": cust, "region": region, "status": status, "k": k}


def _draw_items(rng: np.random.Generator, b: _Base, o: Cols) -> Cols:
    """Order lines for orders ``o`` (needs idday, n, created, upd, k)."""
    import numpy as np

    k = o["k"]
    total = int(k.sum())
    owner = np.repeat(np.arange(len(k)), k)
    starts = np.cumsum(k) - k
    line = np.arange(total) - np.repeat(starts, k) + 1
    n_prod = len(b.prod["idx"])
    prod = np.floor(n_prod * rng.random(total) ** 1.6).astype(np.int64)
    qty = rng.choice(len(_QTY_P), size=total, p=_QTY_P) + 1
    disc = np.array([1.0, 0.9, 0.8])[rng.choice(3, size=total, p=(0.85, 0.10, 0.05))]
    price = np.maximum(np.round(b.prod["price"][prod] * disc / 10.0).astype(np.int64) * 10, 100)
    created = o["created"][owner]
    span = o["upd"][owner] - created + 1
    upd = created + np.floor(rng.random(total) * span).astype(np.int64)
    return {
        "idday": o["idday"][owner],
        "n": o["n"][owner],
        "line": line,
        "prod": prod,
        "qty": qty,
        "price": price,
        "upd": upd,
    }


def _base_day(b: _Base, i: int) -> tuple[Cols, Cols]:
    """Orders and lines of business day ``i`` exactly as first issued (rate independent)."""
    import numpy as np

    n = b.n
    rng = _rng(b.seed, _K_DAY, i)
    tod = np.sort(_draw_tod(rng, n))  # order numbers increase with creation time
    o = _draw_order_attrs(rng, b, n)
    ds = int(b.day_start(i))
    created = ds + tod
    eod = ds + _DAY - 1
    # First version is updated within the first half of the rest of the day, which leaves room
    # for later same-day versions.
    upd = created + np.floor(rng.random(n) * (eod - created) / 2).astype(np.int64)
    o.update(
        idday=np.full(n, i, np.int64),
        n=np.arange(1, n + 1, dtype=np.int64),
        created=created,
        upd=upd,
        ucorr=rng.random(n),  # < correction_rate: corrected by the base; >= 0.5: batch pool
    )
    items = _draw_items(rng, b, o)
    return o, items


# --------------------------------------------------------------------------------------------
# Lateness, corrections and entity updates
# --------------------------------------------------------------------------------------------


def _move_days(i: Arr, shift: Arr, last: int) -> Arr:
    """Target business day ``i + shift``, flipped or clipped into ``0..last``."""
    import numpy as np

    nd = i + shift
    nd = np.where((nd < 0) | (nd > last), i - shift, nd)
    clipped: Arr = np.clip(nd, 0, last)
    return clipped


def _new_price(price: Arr, factor: Arr) -> Arr:
    """A different, still plausible unit price (whole yen, 100..20000)."""
    import numpy as np

    new = np.clip(np.round(price * factor / 10.0).astype(np.int64) * 10, 100, 20000)
    bump = np.where(price < 20000, price + 10, price - 10)
    return np.where(new == price, bump, new)


def _day_rows(b: _Base, i: int, late_rate: float, corr_rate: float) -> tuple[Cols, Cols]:
    """All order and line rows that originate from business day ``i``, with delivery days."""
    import numpy as np

    n, last = b.n, b.days - 1
    o, it = _base_day(b, i)
    k = o["k"]
    starts = np.cumsum(k) - k

    rng = _rng(b.seed, _K_LATE, i)
    late = rng.random(n) < late_rate
    delay = rng.integers(1, 6, size=n)
    early = rng.random(n) < _EARLY_ITEMS_SHARE
    odeliv = np.where(late, np.minimum(i + delay, last), i)
    o["deliv"] = odeliv
    it["deliv"] = np.repeat(odeliv - (late & early & (odeliv > i)), k)

    rng = _rng(b.seed, _K_CORR, i)
    kind_r = rng.random(n)
    cdelay = rng.integers(1, 4, size=n)
    r_cancel = rng.random(n)
    r_line = rng.random(n)
    r_field = rng.random(n)
    r_qty = rng.integers(1, 5, size=n)
    r_factor = rng.uniform(0.5, 1.5, size=n)
    shift = rng.integers(1, 4, size=n) * np.where(rng.random(n) < 0.5, 1, -1)
    r_upd = rng.random(n)

    sel = np.flatnonzero(o["ucorr"] < corr_rate)
    if sel.size == 0:
        return o, it
    # 0 = status change, 1 = line quantity/price change, 2 = created_at moved (about a fifth)
    kind = np.where(kind_r[sel] < 0.4, 0, np.where(kind_r[sel] < 0.8, 1, 2))
    nd = _move_days(np.full(sel.size, i), shift[sel], last)
    kind = np.where((kind == 2) & (nd == i), 0, kind)
    nd = np.where(kind == 2, nd, i)
    created = o["created"][sel] + (nd - i) * _DAY
    cdeliv = np.maximum(np.minimum(odeliv[sel] + cdelay[sel], last), nd)
    ds = b.day0 + cdeliv * _DAY
    lb = np.maximum(np.maximum(o["upd"][sel] + 1, created + 1), ds)
    ub = ds + _DAY - 1
    cupd = lb + np.floor(r_upd[sel] * (ub - lb + 1)).astype(np.int64)

    om = kind != 1
    oc = _take(o, sel[om])
    status = np.array(_NEXT_STATUS)[oc["status"]]
    cancel = (r_cancel[sel[om]] < 0.35) & (oc["status"] != _CANCELLED)
    status = np.where(cancel, _CANCELLED, status)
    oc["status"] = np.where(kind[om] == 0, status, oc["status"])
    oc["created"], oc["upd"], oc["deliv"] = created[om], cupd[om], cdeliv[om]

    im = kind == 1
    osel = sel[im]
    rows = starts[osel] + np.floor(r_line[osel] * k[osel]).astype(np.int64)
    ic = _take(it, rows)
    change_qty = r_field[osel] < 0.5
    ic["qty"] = np.where(change_qty, (ic["qty"] - 1 + r_qty[osel]) % 5 + 1, ic["qty"])
    ic["price"] = np.where(change_qty, ic["price"], _new_price(ic["price"], r_factor[osel]))
    ic["upd"], ic["deliv"] = cupd[im], cdeliv[im]
    return _concat([o, oc]), _concat([it, ic])


def _entity_updates(b: _Base, cols: Cols, rate: float, key: int) -> tuple[Cols, Arr]:
    """Pick ``rate`` of an entity's rows for one later version each; returns rows and kind draws.

    The versions are delivered on a random later day (day 0 if there is only one day) with an
    updated_at on that day, so they are always newer than the first version.
    """
    import numpy as np

    size = len(cols["idx"])
    rng = _rng(b.seed, _K_UPDATES, key)
    m = min(size, int(round(size * rate)))
    pick = np.sort(rng.choice(size, size=m, replace=False))
    upd = _take(cols, pick)
    deliv = rng.integers(1, b.days, size=m) if b.days > 1 else np.zeros(m, np.int64)
    upd["deliv"] = deliv
    upd["upd"] = b.day0 + deliv * _DAY + rng.integers(0, _DAY, size=m)
    return upd, rng.integers(0, 1 << 30, size=m)


def _customer_rows(b: _Base, rate: float) -> Cols:
    """First versions (day 0) plus name / region / email updates of customers."""
    import numpy as np

    first = dict(b.cust)
    first["deliv"] = np.zeros(len(first["idx"]), np.int64)
    upd, r = _entity_updates(b, b.cust, rate, 0)
    kind, s = r % 3, r >> 2  # what changes, and by how much (never by zero)
    n_fam = len(_FAMILY)
    upd["fam"] = np.where(kind == 0, (upd["fam"] + 1 + s % (n_fam - 1)) % n_fam, upd["fam"])
    upd["region"] = np.where(kind == 1, (upd["region"] + 1 + s % 6) % 7, upd["region"])
    upd["dom"] = np.where(kind == 2, (upd["dom"] + 1 + s % 3) % 4, upd["dom"])
    return _concat([first, upd])


def _product_rows(b: _Base, rate: float) -> Cols:
    """First versions (day 0) plus name (model) / category updates of products."""
    import numpy as np

    first = dict(b.prod)
    first["deliv"] = np.zeros(len(first["idx"]), np.int64)
    upd, r = _entity_updates(b, b.prod, rate, 1)
    kind, s = r % 2, r >> 1
    upd["model"] = np.where(kind == 0, (upd["model"] + s % 998) % 999 + 1, upd["model"])
    upd["cat"] = np.where(kind == 1, (upd["cat"] + 1 + s % 6) % 7, upd["cat"])
    return _concat([first, upd])


# --------------------------------------------------------------------------------------------
# Presentation: timestamp spellings, dirt selection, duplicates and same-updated_at versions
# --------------------------------------------------------------------------------------------


def _decoy_order(c: Cols, which: int) -> Cols:
    c["status"] = (c["status"] + 1 + (c["dv"] + which) % 5) % len(STATUSES)
    return c


def _decoy_item(c: Cols, which: int) -> Cols:
    c["qty"] = (c["qty"] + which) % 5 + 1
    return c


def _decoy_customer(c: Cols, which: int) -> Cols:
    c["fam"] = (c["fam"] + 1 + which) % len(_FAMILY)
    return c


def _decoy_product(c: Cols, which: int) -> Cols:
    c["cat"] = (c["cat"] + 1 + which) % len(CATEGORIES)
    return c


def _present(
    cols: Cols,
    rng: np.random.Generator,
    *,
    ts_fields: tuple[str, ...],
    dirty_rate: float,
    n_kinds: int,
    decoy: Callable[[Cols, int], Cols],
    last: int,
) -> Cols:
    """Choose timestamp spellings and dirt, add extra rows, and sort by (delivery day, order).

    Dirt code 0 is clean, ``j`` is ``DIRT_KINDS[entity][j-1]``.  Code 1 adds an exact copy (same
    file or up to two files later); code 2 adds one or two stale versions with the same
    updated_at placed *before* the row in the same file, so "last row wins" keeps the truth.
    """
    import numpy as np

    n = len(cols["deliv"])
    for f in ts_fields:
        cols["form_" + f] = rng.choice(3, size=n, p=_FORM_P)
    dirty = rng.random(n) < dirty_rate
    kind = rng.integers(1, n_kinds + 1, size=n)
    cols["dirt"] = np.where(dirty, kind, 0)
    cols["dv"] = rng.integers(0, 1 << 30, size=n)
    cols["seq"] = np.arange(n, dtype=np.int64) * 4 + 3
    parts = [cols]
    dup = np.flatnonzero(cols["dirt"] == 1)
    if dup.size:
        d = _take(cols, dup)
        d["dirt"] = np.zeros(dup.size, np.int64)
        d["deliv"] = np.minimum(d["deliv"] + np.array(_DUP_SHIFT)[d["dv"] % 4], last)
        parts.append(d)
    ver = np.flatnonzero(cols["dirt"] == 2)
    for which, rows in enumerate((ver, ver[(cols["dv"][ver] >> 3) % 2 == 1])):
        if rows.size:
            d = decoy(_take(cols, rows), which)
            d["dirt"] = np.zeros(rows.size, np.int64)
            d["seq"] = d["seq"] - 2 + which
            parts.append(d)
    allrows = _concat(parts) if len(parts) > 1 else cols
    order = np.lexsort((allrows["seq"], allrows["deliv"]))
    return _take(allrows, order)


class _Buckets:
    """Rows waiting for their delivery day; filled per business day, emptied per file."""

    def __init__(self) -> None:
        self._parts: dict[int, list[Cols]] = {}
        self._empty: Cols | None = None

    def add(self, cols: Cols) -> None:
        """Split rows already sorted by ``deliv`` into per-day slices (sort + slice)."""
        import numpy as np

        if self._empty is None:
            self._empty = _slice(cols, 0, 0)
        deliv = cols["deliv"]
        if deliv.size == 0:
            return
        days = np.arange(int(deliv[0]), int(deliv[-1]) + 2)
        bounds = np.searchsorted(deliv, days)
        for j, lo, hi in zip(days[:-1], bounds[:-1], bounds[1:], strict=True):
            if hi > lo:
                self._parts.setdefault(int(j), []).append(_slice(cols, int(lo), int(hi)))

    def pop(self, day: int) -> Cols:
        """All rows delivered on ``day`` (complete once business day ``day`` was added)."""
        parts = self._parts.pop(day, [])
        if not parts:
            assert self._empty is not None
            return self._empty
        return _concat(parts) if len(parts) > 1 else parts[0]


# --------------------------------------------------------------------------------------------
# Late batch
# --------------------------------------------------------------------------------------------


def _batch_new_orders(
    b: _Base, rng: np.random.Generator, late_days: Arr, lines: int
) -> tuple[Cols, Cols]:
    """New orders on ``late_days`` with exactly ``lines`` lines, numbered above orders_per_day."""
    import numpy as np

    k = rng.choice(len(_LINES_P), size=max(lines, 1), p=_LINES_P) + 1
    csum = np.cumsum(k)
    m = int(np.searchsorted(csum, lines)) + 1 if lines > 0 else 0
    k = k[:m].copy()
    if m:
        k[-1] -= int(csum[m - 1]) - lines
    idday = late_days[rng.integers(0, len(late_days), size=m)]
    tod = _draw_tod(rng, m)
    order = np.lexsort((tod, idday))
    idday, tod = idday[order], tod[order]
    first = np.searchsorted(idday, idday)  # index of the first order of the same day
    o = _draw_order_attrs(rng, b, m)
    o["k"] = k
    ds = b.day0 + idday * _DAY
    created = ds + tod
    o.update(
        idday=idday,
        n=b.n + 1 + np.arange(m) - first,
        created=created,
        upd=created + np.floor(rng.random(m) * (ds + _DAY - 1 - created) / 2).astype(np.int64),
        ucorr=np.ones(m),
        deliv=np.full(m, b.days, np.int64),
    )
    items = _draw_items(rng, b, o)
    items["deliv"] = np.full(len(items["n"]), b.days, np.int64)
    return o, items


def _batch_corrections(
    b: _Base, rng: np.random.Generator, late_days: Arr, count: int
) -> tuple[Cols, Cols]:
    """``count`` corrections of existing orders on a few old dates other than ``late_days``."""
    import numpy as np

    last = b.days - 1
    others = np.setdiff1d(np.arange(b.days), late_days)
    order_days = np.concatenate([rng.permutation(others), rng.permutation(late_days)])
    want_days = max(1, min(3, len(others)))
    day_orders: list[Cols] = []
    day_items: list[Cols] = []
    offset = available = 0
    for d in order_days:  # loop over days, a few at most unless count is huge
        if count == 0 or (available >= count and len(day_orders) >= want_days):
            break
        o, it = _base_day(b, int(d))
        o["start"] = np.cumsum(o["k"]) - o["k"] + offset
        offset += len(it["n"])
        pool = np.flatnonzero(o["ucorr"] >= 0.5)  # orders the base never corrects
        day_orders.append(_take(o, pool))
        day_items.append(it)
        available += pool.size
    if not day_orders:  # nothing to correct: empty columns of the right shape
        o, it = _base_day(b, 0)
        o["deliv"], it["deliv"] = o["n"], it["n"]
        return _slice(o, 0, 0), _slice(it, 0, 0)
    o_all, it_all = _concat(day_orders), _concat(day_items)
    pick = np.sort(rng.choice(available, size=min(count, available), replace=False))
    o = _take(o_all, pick)
    m = pick.size
    kind_r = rng.random(m)
    shift = rng.integers(1, 4, size=m) * np.where(rng.random(m) < 0.5, 1, -1)
    r_line = rng.random(m)
    r_field = rng.random(m)
    r_qty = rng.integers(1, 5, size=m)
    r_factor = rng.uniform(0.5, 1.5, size=m)
    upd = b.day0 + b.days * _DAY + rng.integers(0, _DAY, size=m)

    # 0 = amount change (line), 1 = cancel, 2 = created_at moved
    kind = np.where(kind_r < 0.4, 0, np.where(kind_r < 0.8, 1, 2))
    kind = np.where((kind == 1) & (o["status"] == _CANCELLED), 0, kind)
    nd = _move_days(o["idday"], shift, last)
    kind = np.where((kind == 2) & (nd == o["idday"]), 0, kind)

    om = kind != 0
    oc = _take(o, np.flatnonzero(om))
    oc["status"] = np.where(kind[om] == 1, _CANCELLED, oc["status"])
    oc["created"] = oc["created"] + np.where(kind[om] == 2, nd[om] - oc["idday"], 0) * _DAY
    oc["upd"] = upd[om]
    oc["deliv"] = np.full(int(om.sum()), b.days, np.int64)
    del oc["start"]

    im = ~om
    rows = o["start"][im] + np.floor(r_line[im] * o["k"][im]).astype(np.int64)
    ic = _take(it_all, rows)
    change_qty = r_field[im] < 0.5
    ic["qty"] = np.where(change_qty, (ic["qty"] - 1 + r_qty[im]) % 5 + 1, ic["qty"])
    ic["price"] = np.where(change_qty, ic["price"], _new_price(ic["price"], r_factor[im]))
    ic["upd"] = upd[im]
    ic["deliv"] = np.full(rows.size, b.days, np.int64)
    return oc, ic


# --------------------------------------------------------------------------------------------
# Rendering: numeric columns -> pyarrow string columns (+ dirt) -> files
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _time_table() -> Arr:
    """``HH:MM:SS`` as bytes for every second of a day, shape (86400, 8)."""
    import numpy as np

    s = np.arange(_DAY)
    digits = {0: s // 36000, 1: s // 3600 % 10, 3: s // 600 % 6, 4: s // 60 % 10}
    digits.update({6: s // 10 % 6, 7: s % 10})
    tab = np.full((_DAY, 8), ord(":"), np.uint8)
    for j, d in digits.items():
        tab[:, j] = d + ord("0")
    return tab


def _date_table(first: int, last: int) -> Arr:
    """``YYYY-MM-DDT`` as bytes for epoch day numbers ``first..last``, shape (n, 11)."""
    import numpy as np

    epoch = date(1970, 1, 1)
    text = "".join((epoch + timedelta(days=d)).isoformat() + "T" for d in range(first, last + 1))
    return np.frombuffer(text.encode("ascii"), np.uint8).reshape(-1, 11)


def _fmt_ts(epoch: Arr, form: Arr) -> pa.Array:
    """ISO 8601 text for epoch seconds: ``+09:00`` local, ``Z`` UTC, or naive Tokyo local.

    Built from byte lookup tables into one buffer — strftime is ~10x slower at this volume.
    """
    import numpy as np
    import pyarrow as pa

    n = int(epoch.shape[0])
    if n == 0:
        return pa.array([], pa.string())
    local = epoch + np.where(form == _FORM_Z, 0, _JST)
    dnum, sod = np.divmod(local, _DAY)
    first = int(dnum.min())
    mat = np.empty((n, 25), np.uint8)
    mat[:, :11] = _date_table(first, int(dnum.max()))[dnum - first]
    mat[:, 11:19] = _time_table()[sod]
    suffix = np.zeros((3, 6), np.uint8)
    suffix[0] = np.frombuffer(b"+09:00", np.uint8)
    suffix[1, 0] = ord("Z")
    mat[:, 19:] = suffix[form]
    lengths = np.array([25, 20, 19], np.int64)[form]
    data = mat[np.arange(25) < lengths[:, None]]
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _pad(values: Arr, width: int) -> pa.Array:
    """Integers as zero-padded text (wider numbers keep all their digits)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.utf8_lpad(pa.array(values).cast(pa.string()), width=width, padding="0")


def _fixed(*parts: str | tuple[Arr, int]) -> pa.Array:
    """Strings of literal text and zero-padded non-negative integers ``(values, width)``.

    Built as one byte matrix (ids are fixed width), several times faster than pad + join; if a
    number is wider than its width it falls back to pyarrow so no digit is lost.
    """
    import numpy as np
    import pyarrow as pa

    numbers = [p for p in parts if not isinstance(p, str)]
    if any(v.size and int(v.max()) >= 10**w for v, w in numbers):
        return _join(*(p if isinstance(p, str) else _pad(*p) for p in parts))
    n = len(numbers[0][0])
    width = sum(len(p.encode()) if isinstance(p, str) else p[1] for p in parts)
    mat = np.empty((n, width), np.uint8)
    col = 0
    for p in parts:
        if isinstance(p, str):
            raw = p.encode()
            mat[:, col : col + len(raw)] = np.frombuffer(raw, np.uint8)
            col += len(raw)
            continue
        v, w = p[0].astype(np.int64), p[1]
        for j in range(col + w - 1, col - 1, -1):
            v, digit = np.divmod(v, 10)
            mat[:, j] = digit + ord("0")
        col += w
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(mat))


def _text(values: Arr) -> pa.Array:
    import pyarrow as pa

    return pa.array(values).cast(pa.string())


def _pick(pool: tuple[str, ...], idx: Arr) -> pa.Array:
    """``pool[idx]`` as a string array."""
    import numpy as np
    import pyarrow as pa

    return pa.array(pool, pa.string()).take(pa.array(np.asarray(idx, np.int64)))


def _lit(text: str) -> pa.Scalar:
    """String scalar; passing Python ``str`` to pyarrow compute costs a failed import per call."""
    import pyarrow as pa

    return pa.scalar(text, pa.string())


def _join(*parts: Any) -> pa.Array:
    """Element-wise concatenation of string arrays and literals."""
    import pyarrow.compute as pc

    args = [_lit(p) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*args, _lit(""))


def _mangle(col: pa.Array, mask: Arr, dv: Arr, fn: Callable[[pa.Array, Arr], pa.Array]) -> pa.Array:
    """Replace the masked values of ``col`` by ``fn(values, variant draws)``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not mask.any():
        return col
    sel = pa.array(mask)
    return pc.replace_with_mask(col, sel, fn(col.filter(sel), dv[mask]))


def _fullwidth(sub: pa.Array) -> pa.Array:
    """ASCII letters, digits and symbols to their full-width forms; space to U+3000.

    Works on the UTF-8 bytes directly: every printable ASCII byte becomes the 3-byte encoding of
    its full-width code point, all other bytes are copied.
    """
    import numpy as np
    import pyarrow as pa

    n = len(sub)
    if n == 0:
        return sub
    if sub.offset:
        sub = sub.take(pa.array(np.arange(n)))  # fresh buffers, offset 0
    validity, offset_buf, data_buf = sub.buffers()
    offsets = np.frombuffer(offset_buf, np.int32)[: n + 1]
    data = (
        np.frombuffer(data_buf, np.uint8)[: int(offsets[-1])] if data_buf else np.zeros(0, np.uint8)
    )
    wide = (data >= 0x20) & (data <= 0x7E)
    size = np.where(wide, 3, 1)
    ends = np.cumsum(size)
    pos = ends - size
    out = np.empty(int(ends[-1]) if data.size else 0, np.uint8)
    out[pos[~wide]] = data[~wide]
    cp = np.where(data == 0x20, 0x3000, data.astype(np.int64) + 0xFEE0)[wide]
    at = pos[wide]
    out[at] = 0xE0 | (cp >> 12)
    out[at + 1] = 0x80 | ((cp >> 6) & 0x3F)
    out[at + 2] = 0x80 | (cp & 0x3F)
    new_offsets = np.concatenate([[0], ends])[offsets].astype(np.int32)
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(new_offsets), pa.py_buffer(out), validity, sub.null_count
    )


def _case_pad(sub: pa.Array, dv: Arr) -> pa.Array:
    """Mixed case / full-width / identity, padded with ASCII or full-width spaces; never equal."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    v = dv >> 3
    variant = pa.array((v % 4).astype(np.int8))
    cased = pc.choose(variant, pc.utf8_upper(sub), pc.utf8_capitalize(sub), _fullwidth(sub), sub)
    out = _join(_pick(_PADS, (v >> 2) % 4), cased, _pick(_PADS, (v >> 4) % 4))
    return pc.if_else(pc.equal(out, sub), _join(" ", sub, " "), out)


def _bad_email(sub: pa.Array, dv: Arr) -> pa.Array:
    """Emails that no validator should accept."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(sub)
    variants = (
        pc.replace_substring(sub, "@", ""),  # no-at-sign
        pc.replace_substring_regex(sub, "@.*$", "@"),  # foo@
        pc.replace_substring_regex(sub, "^[^@]*@", "@"),  # @example.jp
        pc.replace_substring(sub, "@", "@@"),
        pc.replace_substring(sub, ".", " ", max_replacements=1),
        pa.array(["foo@"] * n, pa.string()),
        pa.array(["no-at-sign"] * n, pa.string()),
    )
    return pc.choose(pa.array(((dv >> 3) % len(variants)).astype(np.int8)), *variants)


def _hostile(sub: pa.Array, dv: Arr) -> pa.Array:
    """Append injection-style text, quotes, commas, tabs and newlines to a name."""
    return _join(sub, " ", _pick(_HOSTILE, (dv >> 3) % len(_HOSTILE)))


def _bad_ts(sub: pa.Array, dv: Arr) -> pa.Array:
    return _pick(_BAD_TIMESTAMPS, (dv >> 3) % len(_BAD_TIMESTAMPS))


def _bad_number(sub: pa.Array, dv: Arr) -> pa.Array:
    return _pick(_BAD_NUMBERS, (dv >> 3) % len(_BAD_NUMBERS))


def _negative(sub: pa.Array, dv: Arr) -> pa.Array:
    return _join("-", sub)


def _zero(sub: pa.Array, dv: Arr) -> pa.Array:
    return _pick(("0",), dv * 0)


def _missing(sub: pa.Array, dv: Arr) -> pa.Array:
    """Missing key: null (empty in CSV) or an explicit empty string."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.if_else(pa.array((dv >> 3) % 2 == 0), pa.scalar(None, pa.string()), _lit(""))


def _code(entity: str, kind: str) -> int:
    return DIRT_KINDS[entity].index(kind) + 1


def _mask(c: Cols, entity: str, kind: str, field: int | None = None, fields: int = 2) -> Arr:
    """Rows carrying dirt ``kind``; with ``field``, only those whose draw picked that column."""
    m: Arr = c["dirt"] == _code(entity, kind)
    if field is not None:
        m = m & (c["dv"] % fields == field)
    return m


def _table(entity: str, columns: dict[str, pa.Array]) -> pa.Table:
    import pyarrow as pa

    names = COLUMNS[entity]
    return pa.table([columns[n] for n in names], names=list(names))


def _render_customers(c: Cols) -> pa.Table:
    """Customer rows as strings, with their dirt applied."""
    import pyarrow as pa
    import pyarrow.compute as pc

    e = "customers"
    fam_k, fam_r = tuple(f[0] for f in _FAMILY), tuple(f[1] for f in _FAMILY)
    giv_k, giv_r = tuple(g[0] for g in _GIVEN), tuple(g[1] for g in _GIVEN)
    kanji = _join(_pick(fam_k, c["fam"]), " ", _pick(giv_k, c["giv"]))
    romaji = _join(_pick(giv_r, c["giv"]), " ", _pick(fam_r, c["fam"]))
    name = pc.if_else(pa.array(c["romaji"] == 1), romaji, kanji)
    email = _join(
        pc.utf8_lower(_pick(giv_r, c["giv"])),
        ".",
        pc.utf8_lower(_pick(fam_r, c["fam"])),
        _text(c["idx"]),
        "@",
        _pick(_DOMAINS, c["dom"]),
    )
    customer_id = _fixed("C", (c["idx"], 6))
    region = _pick(REGIONS, c["region"])
    updated = _fmt_ts(c["upd"], c["form_upd"])
    dv = c["dv"]
    name = _mangle(name, _mask(c, e, "fullwidth_name"), dv, lambda s, _v: _fullwidth(s))
    name = _mangle(name, _mask(c, e, "hostile_text"), dv, _hostile)
    email = _mangle(email, _mask(c, e, "invalid_email"), dv, _bad_email)
    region = _mangle(region, _mask(c, e, "region_padding"), dv, _case_pad)
    updated = _mangle(updated, _mask(c, e, "bad_timestamp"), dv, _bad_ts)
    customer_id = _mangle(customer_id, _mask(c, e, "missing_key"), dv, _missing)
    return _table(
        e,
        {
            "customer_id": customer_id,
            "name": name,
            "email": email,
            "region": region,
            "updated_at": updated,
        },
    )


def _render_products(c: Cols) -> pa.Table:
    """Product rows as strings (category title-cased), with their dirt applied."""
    import pyarrow.compute as pc

    e = "products"
    nouns = tuple(x for group in _NOUNS for x in group)
    name = _join(_pick(_BRANDS, c["brand"]), " ", _pick(nouns, c["noun"]), " M", _text(c["model"]))
    category = pc.utf8_capitalize(_pick(CATEGORIES, c["cat"]))
    product_id = _fixed("P", (c["idx"], 5))
    updated = _fmt_ts(c["upd"], c["form_upd"])
    dv = c["dv"]
    name = _mangle(name, _mask(c, e, "fullwidth_name"), dv, lambda s, _v: _fullwidth(s))
    name = _mangle(name, _mask(c, e, "hostile_text"), dv, _hostile)
    category = _mangle(category, _mask(c, e, "category_case"), dv, _case_pad)
    updated = _mangle(updated, _mask(c, e, "bad_timestamp"), dv, _bad_ts)
    product_id = _mangle(product_id, _mask(c, e, "missing_key"), dv, _missing)
    return _table(
        e,
        {"product_id": product_id, "name": name, "category": category, "updated_at": updated},
    )


def _order_ids(c: Cols, b: _Base) -> pa.Array:
    """``O{YYYYMMDD}-{n:06d}`` from the id's business day index and order number."""
    return _fixed("O", (b.ymd[c["idday"]], 8), "-", (c["n"], 6))


def _render_orders(c: Cols, b: _Base) -> pa.Table:
    """Order rows as strings, with their dirt applied."""
    e = "orders"
    order_id = _order_ids(c, b)
    customer_id = _fixed("C", (c["cust"] + 1, 6))
    status = _pick(STATUSES, c["status"])
    region = _pick(REGIONS, c["region"])
    created = _fmt_ts(c["created"], c["form_created"])
    updated = _fmt_ts(c["upd"], c["form_upd"])
    dv = c["dv"]
    status = _mangle(status, _mask(c, e, "status_case"), dv, _case_pad)
    region = _mangle(region, _mask(c, e, "region_padding"), dv, _case_pad)
    created = _mangle(created, _mask(c, e, "bad_timestamp", 0), dv, _bad_ts)
    updated = _mangle(updated, _mask(c, e, "bad_timestamp", 1), dv, _bad_ts)
    order_id = _mangle(order_id, _mask(c, e, "missing_key", 0), dv, _missing)
    customer_id = _mangle(customer_id, _mask(c, e, "missing_key", 1), dv, _missing)
    return _table(
        e,
        {
            "order_id": order_id,
            "customer_id": customer_id,
            "status": status,
            "region": region,
            "created_at": created,
            "updated_at": updated,
        },
    )


def _render_items(c: Cols, b: _Base) -> pa.Table:
    """Order line rows as strings (unit_price with two decimals), with their dirt applied."""
    e = "order_items"
    order_id = _order_ids(c, b)
    product_id = _fixed("P", (c["prod"] + 1, 5))
    quantity = _text(c["qty"])
    price = _join(_text(c["price"]), ".00")
    updated = _fmt_ts(c["upd"], c["form_upd"])
    dv = c["dv"]
    quantity = _mangle(quantity, _mask(c, e, "bad_number", 0), dv, _bad_number)
    price = _mangle(price, _mask(c, e, "bad_number", 1), dv, _bad_number)
    quantity = _mangle(quantity, _mask(c, e, "negative_number", 0), dv, _negative)
    price = _mangle(price, _mask(c, e, "negative_number", 1), dv, _negative)
    quantity = _mangle(quantity, _mask(c, e, "zero_quantity"), dv, _zero)
    updated = _mangle(updated, _mask(c, e, "bad_timestamp"), dv, _bad_ts)
    order_id = _mangle(order_id, _mask(c, e, "missing_key", 0), dv, _missing)
    product_id = _mangle(product_id, _mask(c, e, "missing_key", 1), dv, _missing)
    return _table(
        e,
        {
            "order_id": order_id,
            "line_no": _text(c["line"]),
            "product_id": product_id,
            "quantity": quantity,
            "unit_price": price,
            "updated_at": updated,
        },
    )


_JSON_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _needs_json_escape(col: pa.Array) -> bool:
    """Cheap byte scan: does any value hold a quote, backslash or control character?"""
    import numpy as np

    data_buf = col.buffers()[2]
    if data_buf is None:
        return False
    data = np.frombuffer(data_buf, np.uint8)
    return bool(np.any((data < 0x20) | (data == 0x22) | (data == 0x5C)))


def _json_escape(col: pa.Array) -> pa.Array:
    """Escape backslash, quote and control characters so values can sit inside JSON quotes."""
    import pyarrow.compute as pc

    if not _needs_json_escape(col):
        return col
    mask = pc.fill_null(pc.match_substring_regex(col, r'[\x00-\x1f"\\]'), False)
    if not pc.any(mask).as_py():
        return col
    sub = col.filter(mask)
    sub = pc.replace_substring(sub, "\\", "\\\\")
    sub = pc.replace_substring(sub, '"', '\\"')
    for code in range(0x20):
        ch = chr(code)
        sub = pc.replace_substring(sub, ch, _JSON_ESCAPES.get(ch, f"\\u{code:04x}"))
    return pc.replace_with_mask(col, mask, sub)


def _write_jsonl(table: pa.Table, path: Path) -> None:
    """One JSON object per line, every value a JSON string or null, built column-wise.

    Each line is one element-wise concatenation of literal key text and the escaped columns;
    the resulting string array's data buffer is exactly the file content.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0:
        path.write_bytes(b"")
        return
    pieces: list[Any] = []
    text = "{"  # literal text waiting to be emitted before the next column
    for j, name in enumerate(table.column_names):
        col = _json_escape(table.column(name).combine_chunks())
        text += ("" if j == 0 else ",") + json.dumps(name) + ":"
        if col.null_count == 0:
            pieces += [text + '"', col]
            text = '"'
        else:
            quoted = _join('"', col, '"')
            pieces += [text, pc.if_else(pc.is_null(col), _lit("null"), quoted)]
            text = ""
    lines = _join(*pieces, text + "}\n")
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    width = np.int64 if pa.types.is_large_string(lines.type) else np.int32
    offsets = np.frombuffer(lines.buffers()[1], width)
    lo, hi = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    with path.open("wb") as fh:
        fh.write(lines.buffers()[2].slice(lo, hi - lo))


def _write_file(fmt: str, table: pa.Table, path: Path) -> None:
    """Encode one table to ``path`` in ``fmt``."""
    if fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, str(path))
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, str(path))
    else:
        _write_jsonl(table, path)


class _Writer:
    """Writes entity tables into delivery folders and keeps the summary counts.

    Encoding and disk writes run on one background thread (pyarrow releases the GIL there), so
    they overlap with generating the next day; at most a few tables are in flight.  Use as a
    context manager: leaving it waits for every file and re-raises the first write error.
    """

    _MAX_PENDING = 6

    def __init__(self, out: Path, fmt: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.out = out
        self.fmt = fmt
        self.files = 0
        self.rows: dict[str, int] = dict.fromkeys(ENTITIES, 0)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shukei-gen-write")
        self._pending: list[Future[None]] = []

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            if exc_type is None:
                for fut in self._pending:
                    fut.result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def write(self, entity: str, day: date, table: pa.Table) -> None:
        """Queue ``table`` for ``out/<day>/<entity>_<day>.<ext>``."""
        folder = self.out / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{entity}_{day.isoformat()}.{_EXT[self.fmt]}"
        while len(self._pending) >= self._MAX_PENDING:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(_write_file, self.fmt, table, path))
        self.files += 1
        self.rows[entity] += int(table.num_rows)
