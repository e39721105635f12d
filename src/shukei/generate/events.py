"""Vectorised, reproducible generator of e-commerce behaviour events (JSON Lines).

Why: the events pipeline has to cope with the way client telemetry really arrives — late (a
phone that was offline), twice (at-least-once delivery), and sometimes broken.  This module
fabricates such data at realistic volume: one file per delivery day,
``out/YYYY-MM-DD/events_YYYY-MM-DD.jsonl`` (``.jsonl.gz`` with ``gzip=True``), one JSON object
per line.  The folder date is the day an event was *delivered*; an on-time event sits in the
folder of its timestamp's Asia/Tokyo date, a late one in a later folder.

What the data looks like (the input contract, see the constants below):

* Users have a stable profile (one platform, one device; ios/android only on mobile or tablet).
  A session belongs to one user, starts with a ``page_view`` (landing page) and then mixes page
  views, searches and clicks; some sessions add to cart and some of those purchase (per session
  about 45% click, 25% of clickers add to cart, 30% of carts purchase; a purchase is always the
  last event and buys the first carted products).  Sessions start on a Tokyo hourly profile
  (evening peak, night trough); events are at least 2 seconds apart, so timestamps strictly
  increase within a session.  Sessions may run past midnight (their later events belong to the
  next day's folder), except on the last day.
* Money is integer cents internally and written as exact two-decimal JSON numbers
  (``1980.00``); ``total_amount = sum(quantity * unit_price) - discount_amount + shipping_fee``
  holds to the cent for every valid purchase (an absent discount or shipping fee means 0).

Dirt, each kind switched off by a rate of 0 (all three 0: valid, unique, on-time events):

* ``late_rate``: share of valid events delivered 1-3 days after their timestamp's date (at most
  on the last day, so events of the last day are never late).  Delivery keeps what a file-by-file
  consumer needs: a purchase is never delivered before its session's add_to_cart events (behind
  a late cart it is late too), so the late share is slightly above the rate.
* ``duplicate_rate``: share of valid events written a second time as an exact copy of the line,
  later in the same file (half of them) or one or two files later.
* ``invalid_rate`` (at most 0.1): share of extra *invalid* events among all distinct events.
  Each fails exactly one of :data:`INVALID_CHECKS` and nothing else; the rules are spelled out
  in :data:`CHECK_RULES`.  An invalid event is an extra event (it never replaces a valid one, so
  valid events stay valid when it is filtered out), sits in an existing session right after one
  of its events (one second later) or — for an unknown platform or an ios/android desktop — in a
  new one-event session, is never duplicated, and is delivered on time but never before the
  session events preceding it (so a consumer checking file by file already has the session's
  first event and carts; behind a late event it is late too).  At most one invalid event
  joins a session; a day short of suitable sessions writes fewer (the summary counts what was
  written).

How it stays fast and reproducible: every random decision comes from
``numpy.random.default_rng(SeedSequence(seed, spawn_key=(purpose, day)))``.  The valid events
of a day (the "truth") use a stream of their own, so they do not depend on the dirt rates;
lateness, duplicates and invalid events use separate streams.  Columns are built with numpy per
business day, every line is rendered at once from pyarrow string columns (fields absent from an
event are nulls skipped by ``binary_join_element_wise``), lines are routed to delivery days with
a sort + slice, and files are written on a background thread.  Python loops run over days,
files, event types, fields or check kinds — never over events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import quote

if TYPE_CHECKING:
    from concurrent.futures import Future

    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

    Arr: TypeAlias = npt.NDArray[Any]
    Cols: TypeAlias = dict[str, Arr]

__all__ = [
    "CHECK_RULES",
    "COMMON_FIELDS",
    "DEVICE_TYPES",
    "ELEMENT_TYPES",
    "EVENT_TYPES",
    "INVALID_CHECKS",
    "OPTIONAL_FIELDS",
    "PAGE_TYPES",
    "PAYMENT_METHODS",
    "PLATFORMS",
    "REQUIRED_FIELDS",
    "EventsGenSummary",
    "generate_events",
]

# --------------------------------------------------------------------------------------------
# Contract constants (what the downstream pipeline expects)
# --------------------------------------------------------------------------------------------

EVENT_TYPES: tuple[str, ...] = ("page_view", "click", "add_to_cart", "purchase", "search")
PLATFORMS: tuple[str, ...] = ("ios", "android", "web")
DEVICE_TYPES: tuple[str, ...] = ("mobile", "tablet", "desktop")
PAGE_TYPES: tuple[str, ...] = (
    "home",
    "category",
    "product",
    "cart",
    "checkout",
    "search_results",
)
ELEMENT_TYPES: tuple[str, ...] = ("button", "link", "banner", "image")
PAYMENT_METHODS: tuple[str, ...] = (
    "credit_card",
    "paypal",
    "bank_transfer",
    "convenience_store",
    "cod",
)
COMMON_FIELDS: tuple[str, ...] = (
    "event_id",
    "event_type",
    "user_id",
    "session_id",
    "timestamp",
    "platform",
    "device_type",
)
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "page_view": (*COMMON_FIELDS, "page_url", "page_type"),
    "click": (*COMMON_FIELDS, "element_id", "element_type"),
    "add_to_cart": (*COMMON_FIELDS, "product_id", "quantity", "unit_price"),
    "purchase": (*COMMON_FIELDS, "order_id", "items", "total_amount", "payment_method"),
    "search": (*COMMON_FIELDS, "search_query", "result_count"),
}
OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {"purchase": ("discount_amount", "shipping_fee")}

INVALID_CHECKS: tuple[str, ...] = (
    "required_fields",
    "duplicate_event_id",
    "value_ranges",
    "funnel_order",
    "timestamp",
    "amount_consistency",
    "platform_device",
)
#: How each check judges an event.  A check only looks at fields that are present and non-null
#: (absence is ``required_fields``' business) and at known enum values (an unknown value is
#: ``value_ranges``' business), so an invalid event fails exactly its own check.
CHECK_RULES: dict[str, str] = {
    "required_fields": "every field of REQUIRED_FIELDS[event_type] (COMMON_FIELDS for an "
    "unknown type) is present and not null",
    "duplicate_event_id": "no event with different content carries an event_id seen earlier "
    "in delivery order (an identical line is an exact duplicate, not an invalid event)",
    "value_ranges": "event_type, platform, device_type are known values; quantity is an "
    "integer >= 1; unit_price, total_amount, discount_amount, shipping_fee >= 0; "
    "result_count is an integer >= 0",
    "funnel_order": "a purchase's session has an add_to_cart with an earlier timestamp",
    "timestamp": "ISO 8601 with Z or +HH:MM offset, a real instant in 2000-01-01..2099-12-31",
    "amount_consistency": "total_amount == sum(quantity * unit_price) - discount_amount "
    "+ shipping_fee to the cent",
    "platform_device": "ios/android only with mobile or tablet; every event of a session has "
    "the platform of the session's earliest event",
}

_FIELDS: tuple[str, ...] = (  # order of the keys in a line
    *COMMON_FIELDS,
    "page_url",
    "page_type",
    "element_id",
    "element_type",
    "product_id",
    "quantity",
    "unit_price",
    "order_id",
    "items",
    "discount_amount",
    "shipping_fee",
    "total_amount",
    "payment_method",
    "search_query",
    "result_count",
)

_PV, _CLICK, _CART, _PURCH, _SEARCH = range(5)
_IOS, _ANDROID, _WEB = range(3)
_MOBILE, _TABLET, _DESKTOP = range(3)

# --------------------------------------------------------------------------------------------
# Behaviour model
# --------------------------------------------------------------------------------------------

_DAY = 86400
_JST = 9 * 3600
_ID_BITS = 48  # event ids are E + 12 hex digits
_INJECTED_BASE = 1 << 47  # counter range of invalid events (valid ones stay below)
_FKEY_SHIFT = 1 << 34  # delivery-order key: deliv * _FKEY_SHIFT + arrival offset
_REL_BITS = 17  # seconds of arrival within a delivery day (+ a few ordering steps)
_SESSION_SHIFT = 20  # > _REL_BITS + bits of (delivery day - business day) <= 4
_MIN_YEAR, _MAX_YEAR = 2000, 2099
_MAX_DAYS = 36500

# Tokyo hour-of-day weights of session starts: night trough, commute, lunch, evening peak.
_HOUR_W = (5, 3, 2, 1, 1, 1, 2, 4, 5, 5, 5, 6, 8, 6, 5, 5, 5, 6, 7, 8, 10, 11, 10, 7)
_LAST_DAY_MARGIN = 60  # sessions of the last day end before 23:59:00
_GAP_MEAN = 38.0  # seconds between events of a session: 2 + exponential, capped at 900
_GAP_MAX = 898
_Z_SHARE = 0.1  # timestamps written in UTC with "Z" instead of "+09:00"

_PLATFORM_P = (0.38, 0.32, 0.30)
_APP_TABLET_SHARE = 0.15
_WEB_DEVICE_P = (0.30, 0.10, 0.60)
_ACTIVITY_SKEW = 1.4  # some users have many more sessions than others

_PV_GEOM_P = 0.35  # page views per session: geometric, mean ~2.9, at most 15
_PV_MAX = 15
_SEARCH_P = 0.30
_P_CLICK, _P_CART, _P_PURCHASE = 0.45, 0.25, 0.30
_CART_N_P = (0.7, 0.2, 0.1)
_BUY_ALL_CARTS = 0.7
_CLICK_MAX = 6
# Order keys within a session: landing page first, clicks before carts, purchase last.
_KEY_RANGE = {
    _PV: (0.0, 1.0),
    _SEARCH: (0.01, 0.9),
    _CLICK: (0.02, 0.6),
    _CART: (0.6, 0.98),
    _PURCH: (1.0, 1.0),
}

_LANDING_P = (0.40, 0.20, 0.30, 0.0, 0.0, 0.10)  # page_type of a session's first page view
_PAGE_P = (0.08, 0.20, 0.42, 0.10, 0.05, 0.15)
_ELEM_P = (0.40, 0.30, 0.10, 0.20)
_ELEMENTS: tuple[tuple[str, ...], ...] = (  # element_id pools, in ELEMENT_TYPES order
    (
        "btn-add-to-cart",
        "btn-buy-now",
        "btn-search",
        "btn-login",
        "btn-filter",
        "btn-sort",
        "btn-next-page",
    ),
    (
        "link-home",
        "link-category",
        "link-product",
        "link-breadcrumb",
        "link-recommend",
        "link-footer-help",
    ),
    ("banner-winter-sale", "banner-free-shipping", "banner-new-arrivals", "banner-app"),
    ("img-hero", "img-thumb-1", "img-thumb-2", "img-gallery", "img-review"),
)
_QTY_P = (0.75, 0.18, 0.07)
_PAY_P = (0.55, 0.12, 0.06, 0.15, 0.12)
_CATEGORY_SLUGS = ("electronics", "books", "home", "fashion", "food", "toys", "sports")
_QUERIES: tuple[str, ...] = (
    "ワイヤレスイヤホン",
    "iPhone 15 ケース",
    "USB-C ケーブル",
    "Rice Cooker",
    "炊飯器",
    "抹茶",
    "Matcha Latte",
    "yoga mat",
    "ヨガマット",
    "Nintendo Switch",
    "ノートPC",
    "MacBook Air",
    "Tシャツ メンズ",
    "コーヒー豆",
    "加湿器",
    "sneakers",
    "スニーカー レディース",
    "Anker 充電器",
    "モバイルバッテリー",
    "LED Desk Lamp",
    "マンガ 全巻",
    "kanji workbook",
    "お茶 ギフト",
    "RAMEN",
    "手帳 2026",
    '4K モニター 27"',
    "レインコート",
    "LEGO",
    "ぬいぐるみ 柴犬",
    "Running Shoes",
)
_RESULT_ZERO_SHARE = 0.08
_BASE_URL = "https://shop.example.jp"
_PATHS = ("/", "/category/", "/products/P", "/cart", "/checkout", "/search?q=")

_FREE_SHIPPING_CENTS = 500_000  # 5000 yen
_SHIPPING_CENTS = 55_000  # 550 yen
_DISCOUNT_SHARE = 0.25
_COUPONS_CENTS = (30_000, 50_000, 100_000)
_ZERO_SHIPPING_WRITTEN = 0.5  # share of free-shipping purchases that write "shipping_fee":0.00
_CENTS_PRICE_SHARE = 0.1  # products priced with non-zero cents

_DUP_SHIFT = (0, 0, 1, 2)  # exact duplicates: same file (half) or 1-2 files later
_DUP_SAME_FILE_LAG = 1800

# Invalid events: a recipe is (check, variant, base event types, host session class).
_H_ANY, _H_CART, _H_NOCART, _H_WEB, _H_NEW = range(5)
_R_REQ, _R_DUPID, _R_TYPE, _R_PLATFORM, _R_DEVICE = range(5)
_R_QTY0, _R_NEGPRICE, _R_NEGTOTAL, _R_NEGCOUNT, _R_FUNNEL = range(5, 10)
_R_BADTS, _R_OLDTS, _R_FUTURETS, _R_AMOUNT, _R_SWITCH, _R_DESKTOP = range(10, 16)
_NP = (_PV, _CLICK, _CART, _SEARCH)  # event types that need no cart before them
_RECIPES: tuple[tuple[int, int, tuple[int, ...], int], ...] = (
    (0, _R_REQ, (_PV,), _H_ANY),
    (0, _R_REQ, (_CLICK,), _H_ANY),
    (0, _R_REQ, (_CART,), _H_ANY),
    (0, _R_REQ, (_SEARCH,), _H_ANY),
    (0, _R_REQ, (_PURCH,), _H_CART),
    (1, _R_DUPID, (_PV, _CLICK, _SEARCH), _H_ANY),
    (1, _R_DUPID, (_CART,), _H_ANY),
    (1, _R_DUPID, (_PURCH,), _H_CART),
    (2, _R_TYPE, (_PV, _CLICK, _SEARCH), _H_ANY),
    (2, _R_PLATFORM, (_PV,), _H_NEW),
    (2, _R_DEVICE, (_PV, _CLICK, _SEARCH), _H_WEB),
    (2, _R_QTY0, (_CART,), _H_ANY),
    (2, _R_NEGPRICE, (_CART,), _H_ANY),
    (2, _R_NEGTOTAL, (_PURCH,), _H_CART),
    (2, _R_NEGCOUNT, (_SEARCH,), _H_ANY),
    (3, _R_FUNNEL, (_PURCH,), _H_NOCART),
    (4, _R_BADTS, _NP, _H_ANY),
    (4, _R_BADTS, _NP, _H_ANY),
    (4, _R_OLDTS, _NP, _H_ANY),
    (4, _R_FUTURETS, _NP, _H_ANY),
    (5, _R_AMOUNT, (_PURCH,), _H_CART),
    (6, _R_SWITCH, _NP, _H_ANY),
    (6, _R_DESKTOP, (_PV,), _H_NEW),
)
_MAX_INVALID_RATE = 0.1
_UNKNOWN_TYPES = ("scroll", "logout", "video_play", "share", "wishlist_add")
_UNKNOWN_PLATFORMS = ("windows", "linux", "tizen", "webos")
_UNKNOWN_DEVICES = ("tv", "watch", "console", "car")

# Stream purposes for SeedSequence spawn keys.
_K_USERS, _K_PRODUCTS, _K_DAY, _K_LATE, _K_DUP, _K_INVALID, _K_IDS = range(1, 8)


@dataclass(frozen=True)
class EventsGenSummary:
    """What :func:`generate_events` wrote."""

    out: Path
    files: int
    events: int  # lines written, all kinds included (exact duplicates and invalid events too)
    dates: list[date]  # delivery days, one file each
    invalid: dict[str, int]  # invalid events written, per INVALID_CHECKS name
    duplicates: int  # exact duplicate lines
    late: int  # events with a readable timestamp delivered after its Tokyo date (distinct lines)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def generate_events(
    out: Path,
    *,
    start: date,
    days: int,
    users: int,
    seed: int,
    sessions_per_user_day: float = 0.3,
    late_rate: float = 0.01,
    duplicate_rate: float = 0.005,
    invalid_rate: float = 0.005,
    gzip: bool = False,
) -> EventsGenSummary:
    """Write ``days`` delivery folders of behaviour events under ``out``.

    Each Tokyo day ``start .. start+days-1`` gets Poisson(``users * sessions_per_user_day``)
    sessions (about 4.5 events each) of users ``U000001 ..``; see the module docstring for the
    model and the dirt the three rates add.  Same arguments give byte-identical files.  Existing
    files with the same names are overwritten; nothing else under ``out`` is touched.
    """
    _check_args(start, days, users, seed, sessions_per_user_day)
    for name, rate, top in (
        ("late_rate", late_rate, 1.0),
        ("duplicate_rate", duplicate_rate, 1.0),
        ("invalid_rate", invalid_rate, _MAX_INVALID_RATE),
    ):
        if not 0.0 <= rate <= top:
            raise ValueError(f"{name} must be between 0 and {top:g}, got {rate!r}")

    ctx = _Ctx.create(start, days, users, seed, sessions_per_user_day)
    rates = (late_rate, duplicate_rate, invalid_rate)
    buckets = _Buckets()
    with _Writer(Path(out), gzip) as writer:
        for i in range(days):
            buckets.add(_day_lines(ctx, i, rates), i)
            day = start + timedelta(days=i)
            writer.write(day, buckets.pop(i))
    return EventsGenSummary(
        out=Path(out),
        files=writer.files,
        events=writer.lines,
        dates=[start + timedelta(days=i) for i in range(days)],
        invalid=dict(zip(INVALID_CHECKS, ctx.invalid, strict=True)),
        duplicates=ctx.duplicates,
        late=ctx.late,
    )


# --------------------------------------------------------------------------------------------
# Validation and small helpers
# --------------------------------------------------------------------------------------------


def _check_args(start: date, days: int, users: int, seed: int, spud: float) -> None:
    """Reject arguments the generator cannot honour, before anything is written."""
    import math

    if not 1 <= days <= _MAX_DAYS:
        raise ValueError(f"days must be between 1 and {_MAX_DAYS}, got {days}")
    if users < 1:
        raise ValueError(f"users must be >= 1, got {users}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not (math.isfinite(spud) and 0.0 <= spud <= 100.0):
        raise ValueError(f"sessions_per_user_day must be between 0 and 100, got {spud!r}")
    # Valid timestamps must stay inside 2000..2099 so out-of-range ones are unambiguous.
    first, last = date(_MIN_YEAR, 1, 2), date(_MAX_YEAR, 12, 30)
    if not (first <= start and start + timedelta(days=days - 1) <= last):
        raise ValueError(f"start .. start+days-1 must lie within {first} .. {last}, got {start}")


def _rng(seed: int, *key: int) -> np.random.Generator:
    """Independent, re-creatable random stream for ``seed`` and a purpose key."""
    import numpy as np

    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _concat(parts: list[Cols]) -> Cols:
    import numpy as np

    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _take(cols: Cols, idx: Arr) -> Cols:
    return {k: v[idx] for k, v in cols.items()}


def _skewed(rng: np.random.Generator, size: int, n: int, power: float) -> Arr:
    """Indices ``0..size-1`` where low indices are popular (``floor(size * u**power)``)."""
    import numpy as np

    return np.floor(size * rng.random(n) ** power).astype(np.int64)


def _draw_tod(rng: np.random.Generator, n: int) -> Arr:
    """Seconds after Tokyo midnight for ``n`` session starts, following the hour profile."""

    total = float(sum(_HOUR_W))
    hour = rng.choice(24, size=n, p=[w / total for w in _HOUR_W])
    return hour * 3600 + rng.integers(0, 3600, size=n)


# --------------------------------------------------------------------------------------------
# Users, products and the valid events of one day
# --------------------------------------------------------------------------------------------


@dataclass
class _Ctx:
    """Fixed inputs (users, products) and running counters of one generator call."""

    seed: int
    days: int
    users: int
    spud: float
    day0: int  # epoch seconds of start 00:00 Asia/Tokyo
    ymd: Arr  # YYYYMMDD per day index
    plat: Arr  # per user
    dev: Arr  # per user
    act: Arr  # user index by activity rank
    price: Arr  # cents, per product
    id_key: int
    next_valid: int = 0
    next_injected: int = 0
    invalid: list[int] = field(default_factory=lambda: [0] * len(INVALID_CHECKS))
    duplicates: int = 0
    late: int = 0

    @staticmethod
    def create(start: date, days: int, users: int, seed: int, spud: float) -> _Ctx:
        import numpy as np

        rng = _rng(seed, _K_USERS)
        plat = rng.choice(3, size=users, p=_PLATFORM_P)
        app_dev = np.where(rng.random(users) < _APP_TABLET_SHARE, _TABLET, _MOBILE)
        web_dev = rng.choice(3, size=users, p=_WEB_DEVICE_P)
        dev = np.where(plat == _WEB, web_dev, app_dev)
        act = rng.permutation(users)

        rng = _rng(seed, _K_PRODUCTS)
        n_prod = min(5000, max(50, users // 20))
        yen = np.exp(rng.uniform(np.log(100.0), np.log(30000.0), size=n_prod))
        yen = np.round(yen / 10.0).astype(np.int64) * 10
        yen = np.where((yen >= 1000) & (rng.random(n_prod) < 0.4), yen - 20, yen)  # 1980-style
        cents = rng.integers(1, 100, size=n_prod)
        price = np.where(
            rng.random(n_prod) < _CENTS_PRICE_SHARE, (yen - 1) * 100 + cents, yen * 100
        )

        id_key = int(_rng(seed, _K_IDS).integers(0, 1 << _ID_BITS))
        day0 = (start - date(1970, 1, 1)).days * _DAY - _JST
        ymd = np.array([int(f"{start + timedelta(days=i):%Y%m%d}") for i in range(days)])
        return _Ctx(seed, days, users, spud, day0, ymd, plat, dev, act, price, id_key)


def _draw_attrs(rng: np.random.Generator, x: _Ctx, n: int, landing: Arr) -> Cols:
    """Type-specific attributes for ``n`` events (drawn for all, used by their type)."""
    import numpy as np

    n_prod = x.price.size
    elem_size = np.array([len(p) for p in _ELEMENTS])
    elem_base = np.cumsum(elem_size) - elem_size
    etyp = rng.choice(len(ELEMENT_TYPES), size=n, p=_ELEM_P)
    prod = _skewed(rng, n_prod, n, 1.6)
    rc = np.floor(np.exp(rng.uniform(0.0, np.log(5000.0), size=n))).astype(np.int64)
    return {
        "ptype": np.where(
            landing,
            rng.choice(len(PAGE_TYPES), size=n, p=_LANDING_P),
            rng.choice(len(PAGE_TYPES), size=n, p=_PAGE_P),
        ),
        "cat": rng.integers(0, len(_CATEGORY_SLUGS), size=n),
        "query": _skewed(rng, len(_QUERIES), n, 1.5),
        "etyp": etyp,
        "elem": elem_base[etyp] + np.floor(rng.random(n) * elem_size[etyp]).astype(np.int64),
        "prod": prod,
        "qty": rng.choice(len(_QTY_P), size=n, p=_QTY_P) + 1,
        "price": x.price[prod],
        "rc": np.where(rng.random(n) < _RESULT_ZERO_SHARE, 0, rc),
        "pay": rng.choice(len(PAYMENT_METHODS), size=n, p=_PAY_P),
    }


def _purchase_money(rng: np.random.Generator, c: Cols, items: Cols) -> None:
    """Subtotal, discount and shipping of the purchase rows of ``c`` (from their items)."""
    import numpy as np

    n = c["etype"].size
    sub = np.rint(
        np.bincount(items["owner"], weights=items["qty"] * items["price"], minlength=n)
    ).astype(np.int64)
    coupon = np.array(_COUPONS_CENTS)[rng.integers(0, len(_COUPONS_CENTS), size=n)]
    pct = np.round(sub * 0.1 / 100.0).astype(np.int64) * 100
    disc = np.minimum(np.where(rng.random(n) < 0.5, coupon, pct), sub)
    has_disc = (rng.random(n) < _DISCOUNT_SHARE) & (disc > 0)
    ship = np.where(sub >= _FREE_SHIPPING_CENTS, 0, _SHIPPING_CENTS)
    has_ship = (ship > 0) | (rng.random(n) < _ZERO_SHIPPING_WRITTEN)
    c["sub"] = sub
    c["disc"] = np.where(has_disc, disc, 0)
    c["hdisc"] = has_disc
    c["ship"] = np.where(has_ship, ship, 0)
    c["hship"] = has_ship
    c["off"] = np.zeros(n, np.int64)


@dataclass
class _Truth:
    """The valid events of one business day, sorted by session and time."""

    ev: Cols  # one row per event
    items: Cols  # purchase lines: owner (row of ev), prod, qty, price
    s_user: Arr  # per session
    s_first: Arr  # first event row of each session
    s_count: Arr
    s_first_cart: Arr  # row of the session's first add_to_cart, -1 if none
    n_purchases: int


def _truth(x: _Ctx, i: int) -> _Truth:
    """Sessions and valid events of business day ``i`` (independent of the dirt rates)."""
    import numpy as np

    rng = _rng(x.seed, _K_DAY, i)
    ds = x.day0 + i * _DAY
    s_n = int(rng.poisson(x.users * x.spud))
    tod = np.sort(_draw_tod(rng, s_n))
    s_user = x.act[_skewed(rng, x.users, s_n, _ACTIVITY_SKEW)]
    n_pv = np.minimum(rng.geometric(_PV_GEOM_P, size=s_n), _PV_MAX)
    n_search = np.where(rng.random(s_n) < _SEARCH_P, 1 + rng.binomial(2, 0.25, size=s_n), 0)
    clicked = rng.random(s_n) < _P_CLICK
    n_click = np.where(clicked, np.minimum(rng.geometric(0.5, size=s_n), _CLICK_MAX), 0)
    carted = clicked & (rng.random(s_n) < _P_CART)
    n_cart = np.where(carted, rng.choice(3, size=s_n, p=_CART_N_P) + 1, 0)
    bought = carted & (rng.random(s_n) < _P_PURCHASE)
    some = 1 + np.floor(rng.random(s_n) * n_cart).astype(np.int64)
    n_items = np.where(rng.random(s_n) < _BUY_ALL_CARTS, n_cart, some)

    owners, types, keys = [], [], []
    for t, cnt in (
        (_PV, n_pv),
        (_SEARCH, n_search),
        (_CLICK, n_click),
        (_CART, n_cart),
        (_PURCH, bought.astype(np.int64)),
    ):
        own = np.repeat(np.arange(s_n), cnt)
        lo, hi = _KEY_RANGE[t]
        key = lo + (hi - lo) * rng.random(own.size)
        if t == _PV:
            key[np.cumsum(cnt) - cnt] = -1.0  # the landing page comes first
        owners.append(own)
        types.append(np.full(own.size, t, np.int64))
        keys.append(key)
    own = np.concatenate(owners)
    order = np.lexsort((np.concatenate(keys), own))
    own = own[order]
    etype = np.concatenate(types)[order]
    n = own.size

    s_count = np.bincount(own, minlength=s_n)
    s_first = np.cumsum(s_count) - s_count
    pos = np.arange(n) - s_first[own]
    gap = 2 + np.minimum(np.floor(rng.exponential(_GAP_MEAN, size=n)), _GAP_MAX).astype(np.int64)
    cum = np.cumsum(np.where(pos == 0, 0, gap))
    offset = cum - cum[s_first[own]] if n else cum
    s_start = ds + tod
    if i == x.days - 1 and s_n:
        duration = offset[s_first + s_count - 1]
        s_start = np.minimum(s_start, ds + _DAY - _LAST_DAY_MARGIN - duration)
    ev: Cols = {
        "etype": etype,
        "user": s_user[own],
        "sday": np.full(n, x.ymd[i], np.int64),
        "sn": own + 1,
        "ts": s_start[own] + offset,
        "form": (rng.random(n) < _Z_SHARE).astype(np.int64),
        "plat": x.plat[s_user[own]],
        "dev": x.dev[s_user[own]],
    }
    ev.update(_draw_attrs(rng, x, n, pos == 0))

    cart_rows = np.flatnonzero(etype == _CART)
    c_sess = own[cart_rows]
    c_rank = np.arange(cart_rows.size) - np.searchsorted(c_sess, c_sess)
    p_rows = np.flatnonzero(etype == _PURCH)
    p_of_sess = np.full(s_n, -1, np.int64)
    p_of_sess[own[p_rows]] = p_rows
    ordn = np.zeros(n, np.int64)
    ordn[p_rows] = np.arange(1, p_rows.size + 1)
    ev["ordn"] = ordn
    buy = bought[c_sess] & (c_rank < n_items[c_sess])
    rows = cart_rows[buy]
    items: Cols = {
        "owner": p_of_sess[c_sess[buy]],
        "prod": ev["prod"][rows],
        "qty": ev["qty"][rows],
        "price": ev["price"][rows],
    }
    _purchase_money(rng, ev, items)
    s_first_cart = np.full(s_n, -1, np.int64)
    s_first_cart[c_sess[c_rank == 0]] = cart_rows[c_rank == 0]
    return _Truth(ev, items, s_user, s_first, s_count, s_first_cart, int(p_rows.size))


# --------------------------------------------------------------------------------------------
# Dirt: lateness, invalid events, exact duplicates
# --------------------------------------------------------------------------------------------


def _deliver_on_time(x: _Ctx, ts: Arr) -> tuple[Arr, Arr]:
    """Delivery day (the timestamp's Tokyo day) and arrival order key (the timestamp)."""
    return (ts - x.day0) // _DAY, ts.copy()


def _make_late(x: _Ctx, i: int, ev: Cols, rate: float) -> None:
    """Delay ``rate`` of the events (those not on the last day) by 1-3 delivery days."""
    import numpy as np

    n = ev["ts"].size
    deliv, arrival = _deliver_on_time(x, ev["ts"])
    rng = _rng(x.seed, _K_LATE, i)
    late = (rng.random(n) < rate) & (deliv < x.days - 1)
    delay = rng.integers(1, 4, size=n)
    when = rng.integers(0, _DAY, size=n)
    ev["deliv"] = np.where(late, np.minimum(deliv + delay, x.days - 1), deliv)
    ev["arrival"] = np.where(late, x.day0 + ev["deliv"] * _DAY + when, arrival)


def _relkey(x: _Ctx, i: int, deliv: Arr, arrival: Arr) -> Arr:
    """Delivery order as one integer relative to business day ``i`` (< 2**_REL_BITS per day)."""
    rel: Arr = ((deliv - i) << _REL_BITS) + (arrival - (x.day0 + deliv * _DAY))
    return rel


def _from_relkey(x: _Ctx, i: int, rel: Arr) -> tuple[Arr, Arr]:
    deliv = i + (rel >> _REL_BITS)
    return deliv, x.day0 + deliv * _DAY + (rel & ((1 << _REL_BITS) - 1))


def _hold_purchases(x: _Ctx, i: int, t: _Truth) -> None:
    """A purchase is never delivered before its session's add_to_cart events.

    Why: a consumer that checks the funnel file by file (as the pipeline's gate does) must
    already have the carts when the purchase arrives, or a valid purchase would look invalid.
    A purchase behind a late cart becomes late itself (same delivery, just after the cart).
    """
    import numpy as np

    ev = t.ev
    rel = _relkey(x, i, ev["deliv"], ev["arrival"])
    sess = ev["sn"] - 1
    cart = ev["etype"] == _CART
    cart_max = np.full(t.s_user.size, -1, np.int64)
    np.maximum.at(cart_max, sess[cart], rel[cart])
    p = np.flatnonzero(ev["etype"] == _PURCH)
    ev["deliv"][p], ev["arrival"][p] = _from_relkey(x, i, np.maximum(rel[p], cart_max[sess[p]] + 1))


def _deliver_injected(x: _Ctx, i: int, t: _Truth, inj: Cols, anchor: Arr) -> None:
    """Deliver invalid events on time, but never before the session events preceding them.

    Why: a file-by-file consumer then already holds the session's first event (platform
    reference) and earlier carts (funnel) when it meets the invalid event, so the event still
    fails only its own check.  Rows in new sessions (``anchor`` < 0) are simply on time.
    """
    import numpy as np

    deliv, arrival = _deliver_on_time(x, inj["ts"])
    rel = _relkey(x, i, deliv, arrival)
    ev = t.ev
    if ev["ts"].size:
        sess = ev["sn"] - 1
        block = sess << _SESSION_SHIFT
        prefix = np.maximum.accumulate(block + _relkey(x, i, ev["deliv"], ev["arrival"])) - block
        hosted = anchor >= 0
        safe = np.where(hosted, anchor, 0)
        rel = np.where(hosted, np.maximum(rel, prefix[safe] + 1), rel)
    inj["deliv"], inj["arrival"] = _from_relkey(x, i, rel)


def _recipe_tables() -> tuple[Arr, Arr, Arr, Arr, Arr, Arr]:
    """Recipe lookup arrays: first/count per check, types (padded)/count, host, variant."""
    import numpy as np

    checks = np.array([r[0] for r in _RECIPES])
    first = np.searchsorted(checks, np.arange(len(INVALID_CHECKS)))
    count = np.bincount(checks, minlength=len(INVALID_CHECKS))
    width = max(len(r[2]) for r in _RECIPES)
    types = np.array([list(r[2]) + [r[2][0]] * (width - len(r[2])) for r in _RECIPES])
    n_types = np.array([len(r[2]) for r in _RECIPES])
    host = np.array([r[3] for r in _RECIPES])
    variant = np.array([r[1] for r in _RECIPES])
    return first, count, types, n_types, host, variant


def _invalid_events(x: _Ctx, i: int, t: _Truth, rate: float) -> tuple[Cols, Cols, Arr]:
    """Extra events of day ``i`` that each break exactly one check, with their items.

    Rows carry ``recipe`` (index into ``_RECIPES``) and ``vd`` (random bits for sub-choices);
    also returned: each row's anchor (the valid event it follows, -1 in a new session).
    Numeric faults are applied here, textual ones in :func:`_apply_invalid`; the id reused by
    ``duplicate_event_id`` events is set by :func:`_reuse_ids` once delivery order is known.
    """
    import numpy as np

    ev = t.ev
    n_valid = ev["ts"].size
    s_n = t.s_user.size
    rng = _rng(x.seed, _K_INVALID, i)
    k = int(rng.binomial(n_valid, rate / (1.0 - rate))) if rate > 0 and n_valid else 0
    first, count, types, n_types, host_cls, _variant = _recipe_tables()
    check = rng.integers(0, len(INVALID_CHECKS), size=k)
    recipe = first[check] + np.floor(rng.random(k) * count[check]).astype(np.int64)
    etype = types[recipe, np.floor(rng.random(k) * n_types[recipe]).astype(np.int64)]
    cls = host_cls[recipe]
    u_anchor = rng.random(k)

    # One invalid event per host session at most, scarce host classes first.
    has_cart = t.s_first_cart >= 0
    eligible = {
        _H_CART: has_cart,
        _H_WEB: x.plat[t.s_user] == _WEB,
        _H_NOCART: ~has_cart,
        _H_ANY: np.ones(s_n, bool),
    }
    host = np.full(k, -1, np.int64)
    used = np.zeros(s_n, bool)
    for c in (_H_CART, _H_WEB, _H_NOCART, _H_ANY):
        want = np.flatnonzero(cls == c)
        if want.size == 0:
            continue
        cand = rng.permutation(np.flatnonzero(eligible[c] & ~used))[: want.size]
        host[want[: cand.size]] = cand
        used[cand] = True
    keep = np.flatnonzero((host >= 0) | (cls == _H_NEW))
    recipe, etype, cls = recipe[keep], etype[keep], cls[keep]
    host, u_anchor = host[keep], u_anchor[keep]
    m = keep.size

    new = cls == _H_NEW
    hs = np.where(new, 0, host)
    anchor = np.where(
        cls == _H_CART,
        t.s_first_cart[hs],
        t.s_first[hs] + np.floor(u_anchor * t.s_count[hs]).astype(np.int64),
    )
    anchor = np.where(new, 0, anchor)
    new_user = rng.integers(0, x.users, size=m)
    new_ts = x.day0 + i * _DAY + _draw_tod(rng, m)
    user = np.where(new, new_user, t.s_user[hs])
    ts = np.where(new, new_ts, ev["ts"][anchor] + 1) if n_valid else new_ts
    sn = np.where(new, s_n + 1 + np.cumsum(new) - 1, hs + 1)

    inj: Cols = {
        "etype": etype,
        "user": user,
        "sday": np.full(m, x.ymd[i], np.int64),
        "sn": sn,
        "ts": ts,
        "form": (rng.random(m) < _Z_SHARE).astype(np.int64),
        "plat": x.plat[user],
        "dev": x.dev[user],
    }
    inj.update(_draw_attrs(rng, x, m, np.ones(m, bool)))
    purch = np.flatnonzero(etype == _PURCH)
    inj["ordn"] = np.zeros(m, np.int64)
    inj["ordn"][purch] = t.n_purchases + 1 + np.arange(purch.size)
    k_items = rng.integers(1, 4, size=purch.size)
    owner = np.repeat(purch, k_items)
    prod = _skewed(rng, x.price.size, owner.size, 1.6)
    items: Cols = {
        "owner": owner,
        "prod": prod,
        "qty": rng.choice(len(_QTY_P), size=owner.size, p=_QTY_P) + 1,
        "price": x.price[prod],
    }
    _purchase_money(rng, inj, items)
    vd = rng.integers(0, 1 << 30, size=m)
    inj["recipe"] = recipe
    inj["vd"] = vd

    # Numeric mutations (string-level ones happen while rendering).
    def rec(r: int) -> Arr:
        mask: Arr = _variant[recipe] == r
        return mask

    inj["qty"] = np.where(rec(_R_QTY0), 0, inj["qty"])
    inj["price"] = np.where(rec(_R_NEGPRICE), -inj["price"], inj["price"])
    inj["rc"] = np.where(rec(_R_NEGCOUNT), -1 - vd % 100, inj["rc"])
    extra = (1 + vd % 5000) * 100
    neg = rec(_R_NEGTOTAL)
    inj["disc"] = np.where(neg, inj["sub"] + inj["ship"] + extra, inj["disc"])
    inj["hdisc"] = inj["hdisc"] | neg
    total = inj["sub"] - inj["disc"] + inj["ship"]
    off = (1 + vd % 99) * np.where((vd >> 8) % 2 == 0, 1, -1)
    off = np.where(total + off < 0, -off, off)
    inj["off"] = np.where(rec(_R_AMOUNT), off, 0)
    switch = rec(_R_SWITCH)
    inj["plat"] = np.where(switch, (inj["plat"] + 1 + (vd >> 9) % 2) % 3, inj["plat"])
    desk = rec(_R_DESKTOP)
    inj["plat"] = np.where(desk, (vd >> 9) % 2, inj["plat"])  # ios or android
    inj["dev"] = np.where(desk, _DESKTOP, inj["dev"])
    inj["ctr"] = _INJECTED_BASE + x.next_injected + np.arange(m, dtype=np.int64)
    x.next_injected += m
    return inj, items, np.where(new, -1, anchor)


def _reuse_ids(x: _Ctx, i: int, ev: Cols, inj: Cols) -> Arr:
    """Give ``duplicate_event_id`` events the id of a valid event delivered before them.

    Returns the rows of ``inj`` to keep (those without an earlier event are dropped).
    """
    import numpy as np

    _first, _count, _types, _n, _host, variant = _recipe_tables()
    dup = np.flatnonzero(variant[inj["recipe"]] == _R_DUPID)
    keep = np.ones(inj["ts"].size, bool)
    if dup.size == 0:
        return keep
    rng = _rng(x.seed, _K_INVALID, i, 1)
    fkey = ev["deliv"] * _FKEY_SHIFT + (ev["arrival"] - x.day0)
    order = np.argsort(fkey, kind="stable")
    sorted_keys = fkey[order]
    xkey = inj["deliv"][dup] * _FKEY_SHIFT + (inj["arrival"][dup] - x.day0)
    before = np.searchsorted(sorted_keys, xkey, side="right")
    pick = np.floor(rng.random(dup.size) * before).astype(np.int64)
    ok = before > 0
    victim = order[np.minimum(pick, max(order.size - 1, 0))] if order.size else pick
    inj["ctr"][dup[ok]] = ev["ctr"][victim[ok]]
    keep[dup[~ok]] = False
    return keep


def _day_lines(x: _Ctx, i: int, rates: tuple[float, float, float]) -> _Part:
    """All lines whose events belong to business day ``i``, with delivery days and order keys."""
    import numpy as np
    import pyarrow as pa

    late_rate, dup_rate, invalid_rate = rates
    t = _truth(x, i)
    ev, items = t.ev, t.items
    n = ev["ts"].size
    ev["ctr"] = x.next_valid + np.arange(n, dtype=np.int64)
    x.next_valid += n
    ev["recipe"] = np.full(n, -1, np.int64)
    ev["vd"] = np.zeros(n, np.int64)
    _make_late(x, i, ev, late_rate)
    _hold_purchases(x, i, t)

    inj, inj_items, anchor = _invalid_events(x, i, t, invalid_rate)
    _deliver_injected(x, i, t, inj, anchor)
    keep = _reuse_ids(x, i, ev, inj)
    if not keep.all():
        remap = np.cumsum(keep) - 1
        item_keep = keep[inj_items["owner"]]
        inj_items = _take(inj_items, item_keep)
        inj_items["owner"] = remap[inj_items["owner"]]
        inj = _take(inj, keep)
    checks = np.array([r[0] for r in _RECIPES])
    for c, cnt in enumerate(np.bincount(checks[inj["recipe"]], minlength=len(INVALID_CHECKS))):
        x.invalid[c] += int(cnt)

    inj_items["owner"] = inj_items["owner"] + n
    rows = _concat([ev, inj])
    # Late: delivered after the timestamp's Tokyo date, counted where a reader can see it.
    variant = np.where(rows["recipe"] >= 0, np.array([r[1] for r in _RECIPES])[rows["recipe"]], -1)
    unreadable = np.isin(variant, (_R_BADTS, _R_OLDTS, _R_FUTURETS)) | (
        (variant == _R_REQ) & (_req_target(rows["etype"], rows["vd"]) == _FIELDS.index("timestamp"))
    )
    tsday = (rows["ts"] - x.day0) // _DAY
    x.late += int(((rows["deliv"] > tsday) & ~unreadable).sum())
    lines = _render(rows, _concat([items, inj_items]), x.id_key)

    rng = _rng(x.seed, _K_DUP, i)
    dup = np.flatnonzero(rng.random(n) < dup_rate)
    shift = np.array(_DUP_SHIFT)[rng.integers(0, len(_DUP_SHIFT), size=dup.size)]
    ddeliv = np.minimum(ev["deliv"][dup] + shift, x.days - 1)
    same = ddeliv == ev["deliv"][dup]
    lag = rng.integers(1, _DUP_SAME_FILE_LAG, size=dup.size)
    when = rng.integers(0, _DAY, size=dup.size)
    darrival = np.where(same, ev["arrival"][dup] + lag, x.day0 + ddeliv * _DAY + when)
    x.duplicates += int(dup.size)

    deliv = np.concatenate([rows["deliv"], ddeliv])
    arrival = np.concatenate([rows["arrival"], darrival])
    ordinal = np.arange(deliv.size, dtype=np.int64)
    order = np.lexsort((ordinal, arrival, deliv))
    all_lines = pa.concat_arrays([lines, lines.take(pa.array(dup))])
    return _Part(all_lines.take(pa.array(order)), deliv[order], arrival[order], i, ordinal[order])


# --------------------------------------------------------------------------------------------
# Rendering: numeric columns -> JSON text, one pyarrow string per line
# --------------------------------------------------------------------------------------------


def _esc(text: str) -> str:
    """``text`` as it appears between JSON quotes (UTF-8 kept, quotes/backslashes escaped)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _lit(text: str) -> pa.Scalar:
    import pyarrow as pa

    return pa.scalar(text, pa.string())


def _join(*parts: Any) -> pa.Array:
    """Element-wise concatenation of string arrays and literals."""
    import pyarrow.compute as pc

    args = [_lit(p) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*args, _lit(""))


def _pick(pool: tuple[str, ...], idx: Arr) -> pa.Array:
    """``pool[idx]`` as a string array."""
    import numpy as np
    import pyarrow as pa

    return pa.array(pool, pa.string()).take(pa.array(np.asarray(idx, np.int64)))


def _text(values: Arr) -> pa.Array:
    import numpy as np
    import pyarrow as pa

    return pa.array(np.asarray(values, np.int64)).cast(pa.string())


def _fixed(*parts: str | tuple[Arr, int] | tuple[Arr, int, int]) -> pa.Array:
    """Strings of literal text and zero-padded non-negative integers ``(values, width[, base])``.

    Built as one byte matrix (these ids are fixed width), several times faster than pad + join;
    a decimal number wider than its width falls back to pyarrow so no digit is lost.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    nums = [p for p in parts if not isinstance(p, str)]
    n = len(nums[0][0])
    if any(p[0].size and int(p[0].max()) >= (p[2] if len(p) == 3 else 10) ** p[1] for p in nums):
        pieces: list[Any] = []
        for p in parts:
            if isinstance(p, str):
                pieces.append(p)
            else:
                pieces.append(pc.utf8_lpad(_text(p[0]), width=p[1], padding="0"))
        return _join(*pieces)
    width = sum(len(p.encode()) if isinstance(p, str) else p[1] for p in parts)
    mat = np.empty((n, width), np.uint8)
    digits = np.frombuffer(b"0123456789abcdef", np.uint8)
    col = 0
    for p in parts:
        if isinstance(p, str):
            raw = p.encode()
            mat[:, col : col + len(raw)] = np.frombuffer(raw, np.uint8)
            col += len(raw)
            continue
        v, w = p[0].astype(np.int64), p[1]
        base = p[2] if len(p) == 3 else 10
        for j in range(col + w - 1, col - 1, -1):
            v, digit = np.divmod(v, base)
            mat[:, j] = digits[digit]
        col += w
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(mat))


def _scramble(ctr: Arr, key: int) -> Arr:
    """A bijection of 48-bit integers: distinct counters give distinct, random-looking ids."""
    import numpy as np

    mask = np.uint64((1 << _ID_BITS) - 1)
    v = ctr.astype(np.uint64) & mask
    v = (v * np.uint64(0x9E3779B97F4A7C15)) & mask  # odd multiplier: bijective mod 2**48
    v ^= v >> np.uint64(23)
    v = (v * np.uint64(0xBF58476D1CE4E5B9)) & mask
    v ^= v >> np.uint64(29)
    out: Arr = (v ^ np.uint64(key)).astype(np.int64)
    return out


_TWO_DIGITS = tuple(f"{d:02d}" for d in range(100))


def _money(cents: Arr) -> pa.Array:
    """Cents as an exact two-decimal JSON number, e.g. ``1980.00`` or ``-12.05``."""
    import numpy as np

    a = np.abs(cents)
    return _join(_pick(("", "-"), cents < 0), _text(a // 100), ".", _pick(_TWO_DIGITS, a % 100))


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


_TIME_TABLE: list[Arr] = []  # cache of _time_table()


def _fmt_ts(epoch: Arr, form: Arr) -> pa.Array:
    """ISO 8601 text for epoch seconds: form 0 Tokyo local + ``+09:00``, form 1 UTC + ``Z``.

    Built from byte lookup tables into one buffer — strftime is ~10x slower at this volume.
    """
    import numpy as np
    import pyarrow as pa

    n = int(epoch.shape[0])
    if n == 0:
        return pa.array([], pa.string())
    if not _TIME_TABLE:
        _TIME_TABLE.append(_time_table())
    local = epoch + np.where(form == 1, 0, _JST)
    dnum, sod = np.divmod(local, _DAY)
    lo, hi = int(dnum.min()), int(dnum.max())
    epoch_day = date(1970, 1, 1)
    text = "".join((epoch_day + timedelta(days=d)).isoformat() + "T" for d in range(lo, hi + 1))
    dates = np.frombuffer(text.encode("ascii"), np.uint8).reshape(-1, 11)
    mat = np.empty((n, 25), np.uint8)
    mat[:, :11] = dates[dnum - lo]
    mat[:, 11:19] = _TIME_TABLE[0][sod]
    suffix = np.zeros((2, 6), np.uint8)
    suffix[0] = np.frombuffer(b"+09:00", np.uint8)
    suffix[1, 0] = ord("Z")
    mat[:, 19:] = suffix[form]
    lengths = np.array([25, 20], np.int64)[form]
    data = mat[np.arange(25) < lengths[:, None]]
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _scatter(sub: pa.Array, mask: Arr) -> pa.Array:
    """Full-length array: ``sub`` values at the ``mask`` positions (in order), null elsewhere."""
    import numpy as np
    import pyarrow as pa

    idx = np.cumsum(mask) - 1
    return sub.take(pa.array(idx, mask=~mask))


def _frag(name: str, values: pa.Array, quoted: bool = True) -> pa.Array:
    """``"name":"value"`` (or unquoted for numbers and arrays) per value."""
    q = '"' if quoted else ""
    return _join(f'"{name}":{q}', values, q)


def _pool(name: str, pool: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f'"{name}":"{_esc(v)}"' for v in pool)


def _bad_timestamps(ts: pa.Array, vd: Arr, recipe_variant: Arr) -> pa.Array:
    """Unparseable (month 13, day 32, hour 25, minute 61, offset +25:00, ``YYYY-13-40T25``) or
    out-of-range (year 1999 / 2999) spellings of ``ts``, chosen by ``vd`` and the variant."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    def cut(a: int, b: int | None = None) -> pa.Array:
        return pc.utf8_slice_codeunits(ts, start=a, stop=b if b is not None else 1000)

    bad = (
        _join(cut(0, 5), "13", cut(7)),
        _join(cut(0, 8), "32", cut(10)),
        _join(cut(0, 11), "25", cut(13)),
        _join(cut(0, 14), "61", cut(16)),
        _join(cut(0, 19), "+25:00"),
        _join(cut(0, 4), "-13-40T25:00:00"),
    )
    unparseable = pc.choose(pa.array((vd % len(bad)).astype(np.int8)), *bad)
    old, future = _join("1999", cut(4)), _join("2999", cut(4))
    which = np.where(recipe_variant == _R_OLDTS, 1, np.where(recipe_variant == _R_FUTURETS, 2, 0))
    return pc.choose(pa.array(which.astype(np.int8)), unparseable, old, future)


def _render(c: Cols, items: Cols, id_key: int) -> pa.Array:
    """One JSON object + newline per row of ``c``; fields absent from a row are left out."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = c["etype"].size
    if n == 0:
        return pa.array([], pa.string())
    et = c["etype"]
    f: dict[str, pa.Array] = {}
    ids = _scramble(c["ctr"], id_key)
    f["event_id"] = _fixed('"event_id":"E', (ids, 12, 16), '"')
    f["event_type"] = _pick(_pool("event_type", EVENT_TYPES), et)
    f["user_id"] = _fixed('"user_id":"U', (c["user"] + 1, 6), '"')
    f["session_id"] = _fixed('"session_id":"S', (c["sday"], 8), "-", (c["sn"], 6), '"')
    ts_text = _fmt_ts(c["ts"], c["form"])
    f["timestamp"] = _frag("timestamp", ts_text)
    f["platform"] = _pick(_pool("platform", PLATFORMS), c["plat"])
    f["device_type"] = _pick(_pool("device_type", DEVICE_TYPES), c["dev"])

    def sub(mask: Arr, name: str) -> Arr:
        out: Arr = c[name][mask]
        return out

    pv = et == _PV
    ptype = sub(pv, "ptype")
    quoted_queries = tuple(_esc(quote(q, safe="")) for q in _QUERIES)
    tail_pool = ("", *_CATEGORY_SLUGS, *quoted_queries)
    tail_idx = np.where(
        ptype == 1,
        1 + sub(pv, "cat"),
        np.where(ptype == 5, 1 + len(_CATEGORY_SLUGS) + sub(pv, "query"), 0),
    )
    tail = pc.if_else(
        pa.array(ptype == 2), _fixed((sub(pv, "prod") + 1, 5)), _pick(tail_pool, tail_idx)
    )
    url = _join(f'"page_url":"{_BASE_URL}', _pick(_PATHS, ptype), tail, '"')
    f["page_url"] = _scatter(url, pv)
    f["page_type"] = _scatter(_pick(_pool("page_type", PAGE_TYPES), ptype), pv)

    ck = et == _CLICK
    elem_pool = _pool("element_id", tuple(e for group in _ELEMENTS for e in group))
    f["element_id"] = _scatter(_pick(elem_pool, sub(ck, "elem")), ck)
    f["element_type"] = _scatter(_pick(_pool("element_type", ELEMENT_TYPES), sub(ck, "etyp")), ck)

    ct = et == _CART
    f["product_id"] = _scatter(_fixed('"product_id":"P', (sub(ct, "prod") + 1, 5), '"'), ct)
    f["quantity"] = _scatter(_frag("quantity", _text(sub(ct, "qty")), False), ct)
    f["unit_price"] = _scatter(_frag("unit_price", _money(sub(ct, "price")), False), ct)

    pu = et == _PURCH
    f["order_id"] = _scatter(
        _fixed('"order_id":"ORD-', (sub(pu, "sday"), 8), "-", (sub(pu, "ordn"), 6), '"'), pu
    )
    item_text = _join(
        _fixed('{"product_id":"P', (items["prod"] + 1, 5), '","quantity":'),
        _text(items["qty"]),
        ',"unit_price":',
        _money(items["price"]),
        "}",
    )
    p_rows = np.flatnonzero(pu)
    per = np.bincount(items["owner"], minlength=n)[p_rows]
    offsets = np.zeros(p_rows.size + 1, np.int32)
    np.cumsum(per, out=offsets[1:])
    lists = pa.ListArray.from_arrays(pa.array(offsets), item_text)
    f["items"] = _scatter(_join('"items":[', pc.binary_join(lists, _lit(",")), "]"), pu)
    hd = pu & c["hdisc"]
    f["discount_amount"] = _scatter(_frag("discount_amount", _money(sub(hd, "disc")), False), hd)
    hs = pu & c["hship"]
    f["shipping_fee"] = _scatter(_frag("shipping_fee", _money(sub(hs, "ship")), False), hs)
    total = sub(pu, "sub") - sub(pu, "disc") + sub(pu, "ship") + sub(pu, "off")
    f["total_amount"] = _scatter(_frag("total_amount", _money(total), False), pu)
    f["payment_method"] = _scatter(
        _pick(_pool("payment_method", PAYMENT_METHODS), sub(pu, "pay")), pu
    )

    se = et == _SEARCH
    f["search_query"] = _scatter(_pick(_pool("search_query", _QUERIES), sub(se, "query")), se)
    f["result_count"] = _scatter(_frag("result_count", _text(sub(se, "rc")), False), se)

    _apply_invalid(c, f, ts_text)
    body = pc.binary_join_element_wise(*(f[k] for k in _FIELDS), _lit(","), null_handling="skip")
    return _join("{", body, "}\n")


def _req_target(etype: Arr, vd: Arr) -> Arr:
    """For ``required_fields`` events: the index in ``_FIELDS`` of the field to drop or null."""
    import numpy as np

    names = [REQUIRED_FIELDS[t] for t in EVENT_TYPES]
    width = max(len(x) for x in names)
    table = np.array([[_FIELDS.index(x) for x in r] + [0] * (width - len(r)) for r in names])
    n_req = np.array([len(r) for r in names])
    target: Arr = table[etype, vd % n_req[etype]]
    return target


def _apply_invalid(c: Cols, f: dict[str, pa.Array], ts_text: pa.Array) -> None:
    """String-level breakage of invalid rows: dropped/null fields, unknown values, bad times."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    recipe = c["recipe"]
    if not (recipe >= 0).any():
        return
    variant = np.where(recipe >= 0, np.array([r[1] for r in _RECIPES])[recipe], -1)
    vd = c["vd"]

    def put(name: str, mask: Arr, values: pa.Array) -> None:
        if mask.any():
            f[name] = pc.replace_with_mask(f[name], pa.array(mask), values)

    req = variant == _R_REQ
    if req.any():
        target = _req_target(c["etype"], vd)
        as_null = (vd >> 5) % 2 == 1
        for j, name in enumerate(_FIELDS):
            mask = req & (target == j)
            if not mask.any():
                continue
            k = int(mask.sum())
            nulls = pa.array([f'"{name}":null'] * k, pa.string())
            repl = pc.if_else(pa.array(as_null[mask]), nulls, pa.nulls(k, pa.string()))
            put(name, mask, repl)

    mask = variant == _R_TYPE
    put("event_type", mask, _pick(_pool("event_type", _UNKNOWN_TYPES), vd[mask] % 5))
    mask = variant == _R_PLATFORM
    put("platform", mask, _pick(_pool("platform", _UNKNOWN_PLATFORMS), vd[mask] % 4))
    mask = variant == _R_DEVICE
    put("device_type", mask, _pick(_pool("device_type", _UNKNOWN_DEVICES), vd[mask] % 4))
    mask = (variant == _R_BADTS) | (variant == _R_OLDTS) | (variant == _R_FUTURETS)
    if mask.any():
        sel = pa.array(mask)
        bad = _bad_timestamps(ts_text.filter(sel), vd[mask], variant[mask])
        put("timestamp", mask, _frag("timestamp", bad))


# --------------------------------------------------------------------------------------------
# Routing lines to delivery days and writing files
# --------------------------------------------------------------------------------------------


@dataclass
class _Part:
    """Lines sorted by (delivery day, arrival, ordinal), with those keys."""

    lines: pa.Array
    deliv: Arr
    arrival: Arr
    batch: int
    ordinal: Arr


class _Buckets:
    """Lines waiting for their delivery day; filled per business day, emptied per file."""

    def __init__(self) -> None:
        self._parts: dict[int, list[_Part]] = {}

    def add(self, part: _Part, first_day: int) -> None:
        """Split a sorted part into per-delivery-day slices (all on or after ``first_day``)."""
        import numpy as np

        if part.deliv.size == 0:
            return
        days = np.arange(first_day, int(part.deliv[-1]) + 2)
        bounds = np.searchsorted(part.deliv, days)
        for d, lo, hi in zip(days[:-1], bounds[:-1], bounds[1:], strict=True):
            if hi > lo:
                lo_, hi_ = int(lo), int(hi)
                piece = _Part(
                    part.lines.slice(lo_, hi_ - lo_),
                    part.deliv[lo_:hi_],
                    part.arrival[lo_:hi_],
                    part.batch,
                    part.ordinal[lo_:hi_],
                )
                self._parts.setdefault(int(d), []).append(piece)

    def pop(self, day: int) -> pa.Array:
        """All lines delivered on ``day`` in arrival order (complete once day ``day`` was added)."""
        import numpy as np
        import pyarrow as pa

        parts = self._parts.pop(day, [])
        if not parts:
            return pa.array([], pa.string())
        if len(parts) == 1:
            return parts[0].lines
        lines = pa.concat_arrays([p.lines for p in parts])
        arrival = np.concatenate([p.arrival for p in parts])
        batch = np.concatenate([np.full(p.arrival.size, p.batch) for p in parts])
        ordinal = np.concatenate([p.ordinal for p in parts])
        return lines.take(pa.array(np.lexsort((ordinal, batch, arrival))))


def _write_lines(lines: pa.Array, path: Path, gz: bool) -> None:
    """Write the concatenated text of ``lines`` (each ends with a newline) to ``path``."""
    import gzip

    import numpy as np

    if len(lines):
        offsets = np.frombuffer(lines.buffers()[1], np.int32)
        lo, hi = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
        data = memoryview(lines.buffers()[2].slice(lo, hi - lo))
    else:
        data = memoryview(b"")
    with path.open("wb") as fh:
        if gz:
            # mtime=0 and no file name in the header keep the bytes reproducible.
            with gzip.GzipFile(filename="", mode="wb", fileobj=fh, compresslevel=6, mtime=0) as z:
                z.write(data)
        else:
            fh.write(data)


class _Writer:
    """Writes one events file per delivery day on a background thread, counting lines.

    Use as a context manager: leaving it waits for every file and re-raises the first error.
    """

    _MAX_PENDING = 3

    def __init__(self, out: Path, gz: bool) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.out = out
        self.gz = gz
        self.files = 0
        self.lines = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shukei-gen-events")
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

    def write(self, day: date, lines: pa.Array) -> None:
        """Queue ``lines`` for ``out/<day>/events_<day>.jsonl[.gz]``."""
        folder = self.out / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"events_{day.isoformat()}.jsonl{'.gz' if self.gz else ''}"
        while len(self._pending) >= self._MAX_PENDING:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(_write_lines, lines, path, self.gz))
        self.files += 1
        self.lines += len(lines)
