"""Tests for the behaviour-events generator, checked by reading the written files back.

Expectations are computed independently of the generator: lines are parsed with the json module
(``parse_float=Decimal`` so money stays exact), timestamps with ``datetime.fromisoformat``, and
the seven validity rules of the input contract are re-implemented here as small checkers.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import duckdb
import pytest

from shukei.generate.events import EventsGenSummary, generate_events

START = date(2025, 12, 1)
JST = timezone(timedelta(hours=9))

# The contract, written out again so the tests do not trust the module's constants.
TYPES = ("page_view", "click", "add_to_cart", "purchase", "search")
PLATFORMS = ("ios", "android", "web")
DEVICES = ("mobile", "tablet", "desktop")
PAGE_TYPES = ("home", "category", "product", "cart", "checkout", "search_results")
ELEMENT_TYPES = ("button", "link", "banner", "image")
PAYMENTS = ("credit_card", "paypal", "bank_transfer", "convenience_store", "cod")
COMMON = ("event_id", "event_type", "user_id", "session_id", "timestamp", "platform", "device_type")
SPECIFIC = {
    "page_view": ("page_url", "page_type"),
    "click": ("element_id", "element_type"),
    "add_to_cart": ("product_id", "quantity", "unit_price"),
    "purchase": ("order_id", "total_amount", "payment_method", "items"),
    "search": ("search_query", "result_count"),
}
OPTIONAL = {"purchase": ("discount_amount", "shipping_fee")}
CHECKS = (
    "required_fields",
    "duplicate_event_id",
    "value_ranges",
    "funnel_order",
    "timestamp",
    "amount_consistency",
    "platform_device",
)
MONEY = ("unit_price", "total_amount", "discount_amount", "shipping_fee")
TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})")
MONEY_TEXT_RE = re.compile(
    r'"(unit_price|total_amount|discount_amount|shipping_fee)":([-0-9.eE+]+)'
)

Event = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Reading the files back
# ---------------------------------------------------------------------------------------------


@dataclass
class Line:
    raw: str
    ev: Event
    folder: date
    pos: int  # position in delivery order over all files


def read_lines(out: Path) -> list[Line]:
    """Every line of every file in delivery order (folder date, then line number)."""
    lines: list[Line] = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        files = sorted(folder.iterdir())
        assert len(files) == 1, files
        path = files[0]
        assert path.name in (f"events_{folder.name}.jsonl", f"events_{folder.name}.jsonl.gz")
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = data.decode("utf-8")
        assert text == "" or text.endswith("\n")
        for raw in text.splitlines():
            ev = json.loads(raw, parse_float=Decimal)
            assert isinstance(ev, dict)
            lines.append(Line(raw, ev, date.fromisoformat(folder.name), len(lines)))
    return lines


def distinct(lines: list[Line]) -> list[Line]:
    """First occurrence of every distinct line (exact duplicates dropped)."""
    seen: set[str] = set()
    out: list[Line] = []
    for line in lines:
        if line.raw not in seen:
            seen.add(line.raw)
            out.append(line)
    return out


def parse_ts(value: Any) -> datetime | None:
    """The instant of a contract timestamp, or None if unparseable or outside 2000..2099."""
    if not isinstance(value, str) or not TS_RE.fullmatch(value):
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        return None
    utc = ts.astimezone(UTC)
    return ts if 2000 <= utc.year <= 2099 else None


def tokyo_date(value: Any) -> date | None:
    ts = parse_ts(value)
    return None if ts is None else ts.astimezone(JST).date()


# ---------------------------------------------------------------------------------------------
# The seven validity rules, re-implemented.  Each only judges fields that are present and known
# (absence belongs to required_fields, unknown enum values to value_ranges).
# ---------------------------------------------------------------------------------------------


def is_int(v: Any) -> bool:
    return type(v) is int


def is_num(v: Any) -> bool:
    return type(v) in (int, Decimal)


def fails_required(e: Event) -> bool:
    t = e.get("event_type")
    need = COMMON + SPECIFIC.get(t, ()) if isinstance(t, str) else COMMON
    return any(e.get(k) is None for k in need)


def fails_value_ranges(e: Event) -> bool:
    return bool(value_range_faults(e))


def value_range_faults(e: Event) -> list[str]:
    faults = []
    for key, allowed in (("event_type", TYPES), ("platform", PLATFORMS), ("device_type", DEVICES)):
        if e.get(key) is not None and e[key] not in allowed:
            faults.append(f"unknown {key}")
    t = e.get("event_type")
    lines: list[Event] = []
    if t == "add_to_cart":
        lines = [e]
    elif t == "purchase" and isinstance(e.get("items"), list):
        lines = [i for i in e["items"] if isinstance(i, dict)]
    for item in lines:
        q, p = item.get("quantity"), item.get("unit_price")
        if q is not None and (not is_int(q) or q < 1):
            faults.append("quantity")
        if p is not None and (not is_num(p) or p < 0):
            faults.append("unit_price")
    if t == "purchase":
        for key in ("total_amount", "discount_amount", "shipping_fee"):
            v = e.get(key)
            if v is not None and (not is_num(v) or v < 0):
                faults.append(key)
    if t == "search":
        v = e.get("result_count")
        if v is not None and (not is_int(v) or v < 0):
            faults.append("result_count")
    return faults


def fails_timestamp(e: Event) -> bool:
    return e.get("timestamp") is not None and parse_ts(e["timestamp"]) is None


def fails_amount(e: Event) -> bool:
    if e.get("event_type") != "purchase":
        return False
    items, total = e.get("items"), e.get("total_amount")
    if not isinstance(items, list) or not is_num(total):
        return False
    subtotal = Decimal(0)
    for item in items:
        q, p = item.get("quantity"), item.get("unit_price")
        if not (is_num(q) and is_num(p)):
            return False
        subtotal += Decimal(str(q)) * Decimal(str(p))
    disc = e.get("discount_amount") or Decimal(0)
    ship = e.get("shipping_fee") or Decimal(0)
    return Decimal(str(total)) != subtotal - Decimal(str(disc)) + Decimal(str(ship))


def failures(lines: list[Line]) -> list[set[str]]:
    """Per distinct line (delivery order), the set of rules it breaks."""
    evs = [ln.ev for ln in lines]
    out: list[set[str]] = [set() for _ in evs]
    by_session: dict[str, list[int]] = defaultdict(list)
    seen_ids: set[str] = set()
    for j, e in enumerate(evs):
        if fails_required(e):
            out[j].add("required_fields")
        if fails_value_ranges(e):
            out[j].add("value_ranges")
        if fails_timestamp(e):
            out[j].add("timestamp")
        if fails_amount(e):
            out[j].add("amount_consistency")
        if e.get("platform") in ("ios", "android") and e.get("device_type") == "desktop":
            out[j].add("platform_device")
        eid = e.get("event_id")
        if eid is not None:
            if eid in seen_ids:  # a *different* line reusing an id seen earlier
                out[j].add("duplicate_event_id")
            seen_ids.add(eid)
        if e.get("session_id") is not None:
            by_session[e["session_id"]].append(j)
    for rows in by_session.values():
        timed = [(parse_ts(evs[j].get("timestamp")), j) for j in rows]
        timed_ok = sorted((ts, j) for ts, j in timed if ts is not None)
        known = [j for _, j in timed_ok if evs[j].get("platform") in PLATFORMS]
        if known:
            ref = evs[known[0]]["platform"]
            for j in rows:
                p = evs[j].get("platform")
                if p in PLATFORMS and p != ref:
                    out[j].add("platform_device")
        carts = [ts for ts, j in timed_ok if evs[j].get("event_type") == "add_to_cart"]
        for ts, j in timed_ok:
            if evs[j].get("event_type") == "purchase" and not any(c < ts for c in carts):
                out[j].add("funnel_order")
    return out


def streaming_failures(lines: list[Line]) -> list[set[str]]:
    """funnel_order and platform_device as a consumer sees them folder by folder.

    Per distinct line: judged with only the events of its own and earlier folders known, the way
    a gate checking each delivery against what was loaded before does.
    """
    uniq = distinct(lines)
    out: list[set[str]] = [set() for _ in uniq]
    known: dict[str, list[tuple[datetime, Event]]] = defaultdict(list)
    folders: dict[date, list[int]] = defaultdict(list)
    for j, ln in enumerate(uniq):
        folders[ln.folder].append(j)
    for folder in sorted(folders):
        for j in folders[folder]:
            e = uniq[j].ev
            ts = parse_ts(e.get("timestamp"))
            if e.get("session_id") is not None and ts is not None:
                known[e["session_id"]].append((ts, e))
        for j in folders[folder]:
            e = uniq[j].ev
            ts = parse_ts(e.get("timestamp"))
            if e.get("session_id") is None:
                continue
            seen = sorted(known[e["session_id"]], key=lambda te: te[0])
            carts = [t for t, s in seen if s.get("event_type") == "add_to_cart"]
            if (
                e.get("event_type") == "purchase"
                and ts is not None
                and not any(c < ts for c in carts)
            ):
                out[j].add("funnel_order")
            if e.get("platform") in ("ios", "android") and e.get("device_type") == "desktop":
                out[j].add("platform_device")
            ref = [s["platform"] for _, s in seen if s.get("platform") in PLATFORMS]
            if ref and e.get("platform") in PLATFORMS and e["platform"] != ref[0]:
                out[j].add("platform_device")
    return out


DROP = object()  # marks a key to remove in the hand-made cases below


def hand_made() -> list[Event]:
    """A valid session: page view, add to cart, purchase (total 2 * 10.25 - 1 + 5.5 = 25)."""
    common = dict(user_id="U000001", session_id="S1", platform="ios", device_type="mobile")
    return [
        dict(
            common,
            event_id="E1",
            event_type="page_view",
            timestamp="2025-12-01T10:00:00+09:00",
            page_url="https://x/",
            page_type="home",
        ),
        dict(
            common,
            event_id="E2",
            event_type="add_to_cart",
            timestamp="2025-12-01T01:00:10Z",
            product_id="P00001",
            quantity=2,
            unit_price=Decimal("10.25"),
        ),
        dict(
            common,
            event_id="E3",
            event_type="purchase",
            timestamp="2025-12-01T10:00:20+09:00",
            order_id="O1",
            items=[dict(product_id="P00001", quantity=2, unit_price=Decimal("10.25"))],
            discount_amount=Decimal("1.00"),
            shipping_fee=Decimal("5.5"),
            total_amount=Decimal("25.00"),
            payment_method="cod",
        ),
    ]


@pytest.mark.parametrize(
    ("row", "change", "check"),
    [
        (0, {"page_type": None}, "required_fields"),
        (2, {"items": DROP}, "required_fields"),
        (1, {"session_id": DROP}, "required_fields"),
        (1, {"event_id": "E1"}, "duplicate_event_id"),
        (0, {"event_type": "scroll"}, "value_ranges"),
        (1, {"quantity": 0}, "value_ranges"),
        (1, {"unit_price": Decimal("-10.25")}, "value_ranges"),
        (2, {"event_type": "purchase", "timestamp": "2025-12-01T10:00:05+09:00"}, "funnel_order"),
        (0, {"timestamp": "2025-13-40T25:00:00"}, "timestamp"),
        (0, {"timestamp": "1999-12-01T10:00:00+09:00"}, "timestamp"),
        (2, {"total_amount": Decimal("25.01")}, "amount_consistency"),
        (0, {"device_type": "desktop"}, "platform_device"),
        (2, {"platform": "android"}, "platform_device"),
    ],
)
def test_checkers_flag_hand_made_faults(row: int, change: Event, check: str) -> None:
    """The test's own rule checkers: a valid session passes, each single fault is caught."""

    def as_lines(evs: list[Event]) -> list[Line]:
        return [Line(json.dumps(e, default=str), e, START, j) for j, e in enumerate(evs)]

    evs = hand_made()
    assert failures(as_lines(evs)) == [set(), set(), set()]
    evs[row] = {k: v for k, v in {**evs[row], **change}.items() if v is not DROP}
    assert failures(as_lines(evs))[row] == {check}


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------

SHAPE: dict[str, Any] = dict(start=START, days=4, users=3000, seed=7)
ZERO: dict[str, Any] = dict(late_rate=0, duplicate_rate=0, invalid_rate=0)
RATE = 0.05
DIRTY: dict[str, Any] = dict(late_rate=RATE, duplicate_rate=RATE, invalid_rate=RATE)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[EventsGenSummary, list[Line]]:
    out = tmp_path_factory.mktemp("clean")
    summary = generate_events(out, **SHAPE, **ZERO)
    return summary, read_lines(out)


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> tuple[EventsGenSummary, list[Line]]:
    out = tmp_path_factory.mktemp("dirty")
    summary = generate_events(out, **SHAPE, **DIRTY)
    return summary, read_lines(out)


def digest(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------------------------------------
# Arguments, reproducibility, layout
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        dict(days=0),
        dict(users=0),
        dict(seed=-1),
        dict(late_rate=1.5),
        dict(duplicate_rate=-0.1),
        dict(invalid_rate=0.5),
        dict(sessions_per_user_day=-1.0),
        dict(start=date(1999, 6, 1)),
    ],
)
def test_bad_arguments_raise_one_line_value_error(tmp_path: Path, kw: dict[str, Any]) -> None:
    args: dict[str, Any] = dict(start=START, days=2, users=10, seed=1)
    args.update(kw)
    with pytest.raises(ValueError) as err:
        generate_events(tmp_path, **args)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    args: dict[str, Any] = dict(start=START, days=3, users=300, **DIRTY)
    for gz in (False, True):
        a, b, c = (tmp_path / f"{gz}-{name}" for name in "abc")
        generate_events(a, seed=3, gzip=gz, **args)
        generate_events(b, seed=3, gzip=gz, **args)
        generate_events(c, seed=4, gzip=gz, **args)
        assert digest(a) == digest(b)
        assert digest(a).keys() == digest(c).keys()
        assert all(digest(a)[k] != digest(c)[k] for k in digest(a))


def test_layout_and_summary_counts(dirty: tuple[EventsGenSummary, list[Line]]) -> None:
    summary, lines = dirty
    assert summary.dates == [START + timedelta(days=i) for i in range(4)]
    assert summary.files == 4
    assert sorted(summary.out.iterdir()) == [summary.out / d.isoformat() for d in summary.dates]
    assert summary.events == len(lines)
    assert set(summary.invalid) == set(CHECKS)


def test_gzip_output_holds_the_same_lines(tmp_path: Path) -> None:
    args: dict[str, Any] = dict(start=START, days=2, users=400, seed=5, **DIRTY)
    plain = generate_events(tmp_path / "plain", **args)
    packed = generate_events(tmp_path / "gz", gzip=True, **args)
    assert all(p.name.endswith(".jsonl.gz") for p in (tmp_path / "gz").rglob("*.gz"))
    assert [ln.raw for ln in read_lines(tmp_path / "gz")] == [
        ln.raw for ln in read_lines(tmp_path / "plain")
    ]
    assert packed.events == plain.events
    assert (packed.invalid, packed.duplicates, packed.late) == (
        plain.invalid,
        plain.duplicates,
        plain.late,
    )


def test_duckdb_reads_the_files(dirty: tuple[EventsGenSummary, list[Line]]) -> None:
    summary, lines = dirty
    glob = str(summary.out / "*" / "events_*.jsonl")
    n, purchases = duckdb.sql(
        f"SELECT count(*), count(*) FILTER (event_type = 'purchase') "
        f"FROM read_json_auto('{glob}', format='newline_delimited')"
    ).fetchone() or (0, 0)
    assert n == len(lines)
    assert purchases == sum(ln.ev.get("event_type") == "purchase" for ln in lines)


# ---------------------------------------------------------------------------------------------
# Clean data: the contract holds everywhere
# ---------------------------------------------------------------------------------------------


def test_clean_events_pass_every_rule(clean: tuple[EventsGenSummary, list[Line]]) -> None:
    summary, lines = clean
    assert summary.invalid == dict.fromkeys(CHECKS, 0)
    assert summary.duplicates == 0 and summary.late == 0
    assert len(lines) > 10_000
    assert all(not f for f in failures(lines))
    ids = [ln.ev["event_id"] for ln in lines]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"E[0-9a-f]{12}", i) for i in ids)
    assert len({ln.raw for ln in lines}) == len(lines)


def test_clean_fields_and_formats(clean: tuple[EventsGenSummary, list[Line]]) -> None:
    _, lines = clean
    for ln in lines:
        e = ln.ev
        t = e["event_type"]
        assert set(e) - set(OPTIONAL.get(t, ())) == set(COMMON + SPECIFIC[t]), e
        assert re.fullmatch(r"U\d{6}", e["user_id"]) and re.fullmatch(r"S\S+", e["session_id"])
        assert e["timestamp"].endswith(("+09:00", "Z"))
        if t == "page_view":
            assert e["page_type"] in PAGE_TYPES and e["page_url"].startswith("https://")
        elif t == "click":
            assert e["element_type"] in ELEMENT_TYPES and isinstance(e["element_id"], str)
        elif t == "add_to_cart":
            assert re.fullmatch(r"P\d{5}", e["product_id"])
        elif t == "purchase":
            assert e["payment_method"] in PAYMENTS and e["items"] and e["order_id"]
            for item in e["items"]:
                assert set(item) == {"product_id", "quantity", "unit_price"}
                assert re.fullmatch(r"P\d{5}", item["product_id"]) and item["quantity"] >= 1
        # Money is written as exact decimals with at most two places, never float artefacts.
        for key, text in MONEY_TEXT_RE.findall(ln.raw):
            assert re.fullmatch(r"\d+(\.\d{1,2})?", text), (key, text)
    forms = Counter("Z" if ln.ev["timestamp"].endswith("Z") else "+09" for ln in lines)
    assert 0.8 < forms["+09"] / len(lines) < 0.97
    orders = [ln.ev["order_id"] for ln in lines if ln.ev["event_type"] == "purchase"]
    assert len(set(orders)) == len(orders)


def test_clean_events_sit_in_their_tokyo_date_folder(
    clean: tuple[EventsGenSummary, list[Line]],
) -> None:
    _, lines = clean
    assert all(tokyo_date(ln.ev["timestamp"]) == ln.folder for ln in lines)
    # Some sessions run past midnight: their events are split over two folders.
    folders: dict[str, set[date]] = defaultdict(set)
    for ln in lines:
        folders[ln.ev["session_id"]].add(ln.folder)
    assert any(len(f) == 2 for f in folders.values())


def test_users_keep_one_platform_and_device(clean: tuple[EventsGenSummary, list[Line]]) -> None:
    _, lines = clean
    profile: dict[str, set[tuple[str, str]]] = defaultdict(set)
    session_user: dict[str, set[str]] = defaultdict(set)
    for ln in lines:
        profile[ln.ev["user_id"]].add((ln.ev["platform"], ln.ev["device_type"]))
        session_user[ln.ev["session_id"]].add(ln.ev["user_id"])
    assert all(len(p) == 1 for p in profile.values())
    assert all(len(u) == 1 for u in session_user.values())
    pairs = Counter(next(iter(p)) for p in profile.values())
    assert {p for p, _ in pairs} == set(PLATFORMS)
    assert {d for p, d in pairs if p == "web"} == set(DEVICES)
    assert {d for p, d in pairs if p != "web"} == {"mobile", "tablet"}


def test_sessions_start_with_page_views_and_time_increases(
    clean: tuple[EventsGenSummary, list[Line]],
) -> None:
    _, lines = clean
    sessions: dict[str, list[Event]] = defaultdict(list)
    for ln in lines:
        sessions[ln.ev["session_id"]].append(ln.ev)
    starts: Counter[int] = Counter()
    for evs in sessions.values():
        times = [parse_ts(e["timestamp"]) for e in evs]
        assert all(a is not None and b is not None and a < b for a, b in pairwise(times))
        assert evs[0]["event_type"] == "page_view"
        if evs[-1]["event_type"] != "purchase":
            assert "purchase" not in {e["event_type"] for e in evs}
        first = times[0]
        assert first is not None
        starts[first.astimezone(JST).hour] += 1
    # Realistic hourly shape: busy evenings, quiet small hours.
    evening = sum(starts[h] for h in range(19, 24)) / 5
    night = sum(starts[h] for h in range(2, 6)) / 4
    assert evening > 4 * night > 0


def test_funnel_rates_are_plausible(clean: tuple[EventsGenSummary, list[Line]]) -> None:
    _, lines = clean
    seen: dict[tuple[str, date], set[str]] = defaultdict(set)
    for ln in lines:
        day = tokyo_date(ln.ev["timestamp"])
        assert day is not None
        seen[(ln.ev["user_id"], day)].add(ln.ev["event_type"])
    viewed = [s for s in seen.values() if "page_view" in s]
    clicked = [s for s in viewed if "click" in s]
    carted = [s for s in clicked if "add_to_cart" in s]
    bought = [s for s in carted if "purchase" in s]
    assert 0.40 <= len(clicked) / len(viewed) <= 0.60
    assert 0.20 <= len(carted) / len(clicked) <= 0.35
    assert 0.25 <= len(bought) / len(carted) <= 0.40
    assert 0.15 < sum("search" in s for s in viewed) / len(viewed) < 0.5


def test_search_queries_include_japanese_and_mixed_case(
    clean: tuple[EventsGenSummary, list[Line]],
) -> None:
    _, lines = clean
    queries = {ln.ev["search_query"] for ln in lines if ln.ev["event_type"] == "search"}
    assert any(re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", q) for q in queries)
    assert any(q != q.lower() and q != q.upper() for q in queries)
    counts = [ln.ev["result_count"] for ln in lines if ln.ev["event_type"] == "search"]
    assert 0 in counts and max(counts) > 100


def test_purchase_totals_add_up_to_the_cent(clean: tuple[EventsGenSummary, list[Line]]) -> None:
    _, lines = clean
    purchases = [ln.ev for ln in lines if ln.ev["event_type"] == "purchase"]
    assert len(purchases) > 100
    discounted = shipped = cents = 0
    for e in purchases:
        subtotal = sum(Decimal(i["quantity"]) * Decimal(i["unit_price"]) for i in e["items"])
        disc = Decimal(e.get("discount_amount", 0))
        ship = Decimal(e.get("shipping_fee", 0))
        assert Decimal(e["total_amount"]) == subtotal - disc + ship
        assert Decimal(e["total_amount"]) >= 0
        discounted += "discount_amount" in e
        shipped += "shipping_fee" in e
        cents += any(Decimal(i["unit_price"]) % 1 != 0 for i in e["items"])
    # The optional fields are sometimes there and sometimes not; some prices carry cents.
    assert 0 < discounted < len(purchases) and 0 < shipped < len(purchases) and cents > 0


def test_purchase_items_were_added_to_cart_before(
    clean: tuple[EventsGenSummary, list[Line]],
) -> None:
    _, lines = clean
    carts: dict[str, list[tuple[str, int, Decimal]]] = defaultdict(list)
    for ln in lines:
        e = ln.ev
        if e["event_type"] == "add_to_cart":
            carts[e["session_id"]].append((e["product_id"], e["quantity"], e["unit_price"]))
        elif e["event_type"] == "purchase":
            bought = [(i["product_id"], i["quantity"], i["unit_price"]) for i in e["items"]]
            assert bought == carts[e["session_id"]][: len(bought)]


# ---------------------------------------------------------------------------------------------
# Dirty data: each kind of dirt in its requested share, invalid events fail exactly one rule
# ---------------------------------------------------------------------------------------------


def test_invalid_events_fail_exactly_their_one_rule(
    dirty: tuple[EventsGenSummary, list[Line]],
) -> None:
    summary, lines = dirty
    fails = failures(distinct(lines))
    assert all(len(f) <= 1 for f in fails)
    counts = Counter(next(iter(f)) for f in fails if f)
    assert dict(counts) == {k: v for k, v in summary.invalid.items() if v}
    assert all(summary.invalid[k] >= 30 for k in CHECKS)  # spread over the seven kinds
    share = sum(counts.values()) / len(fails)
    assert RATE * 0.8 < share < RATE * 1.2


def test_invalid_events_cover_every_variant(dirty: tuple[EventsGenSummary, list[Line]]) -> None:
    _, lines = dirty
    uniq = distinct(lines)
    fails = failures(uniq)
    bad = defaultdict(list)
    for ln, f in zip(uniq, fails, strict=True):
        for check in f:
            bad[check].append(ln.ev)
    faults = Counter(x for e in bad["value_ranges"] for x in value_range_faults(e))
    assert set(faults) == {
        "unknown event_type",
        "unknown platform",
        "unknown device_type",
        "quantity",
        "unit_price",
        "total_amount",
        "result_count",
    }
    missing = [e for e in bad["required_fields"] if any(k not in e for k in COMMON)]
    nulls = [e for e in bad["required_fields"] if any(v is None for v in e.values())]
    assert missing and nulls
    stamps = [e["timestamp"] for e in bad["timestamp"]]
    assert any(s.startswith("1999-") for s in stamps) and any(s.startswith("2999-") for s in stamps)
    assert any(not s.startswith(("1999-", "2999-")) for s in stamps)
    desktop = [e for e in bad["platform_device"] if e["device_type"] == "desktop"]
    assert desktop and len(desktop) < len(bad["platform_device"])


def test_valid_events_are_the_clean_events(
    clean: tuple[EventsGenSummary, list[Line]], dirty: tuple[EventsGenSummary, list[Line]]
) -> None:
    """Dirt is added on top: dropping invalid events and duplicates gives the clean data."""
    _, clean_lines = clean
    _, dirty_lines = dirty
    uniq = distinct(dirty_lines)
    valid = {ln.raw for ln, f in zip(uniq, failures(uniq), strict=True) if not f}
    assert valid == {ln.raw for ln in clean_lines}


@pytest.mark.parametrize("late_rate", [RATE, 0.5])
def test_file_by_file_consumer_sees_the_same_faults(
    dirty: tuple[EventsGenSummary, list[Line]], tmp_path: Path, late_rate: float
) -> None:
    """Late carts never leave a valid purchase without its cart when it arrives, and invalid
    events never arrive before their session's first event, so judging each folder against the
    folders before it flags exactly what judging the whole data set flags."""
    if late_rate == RATE:
        _, lines = dirty
    else:
        generate_events(tmp_path, **{**SHAPE, "users": 1000}, **{**DIRTY, "late_rate": late_rate})
        lines = read_lines(tmp_path)
    rules = {"funnel_order", "platform_device"}
    whole = [f & rules for f in failures(distinct(lines))]
    assert streaming_failures(lines) == whole
    assert sum(map(bool, whole)) > 20


def test_exact_duplicates_repeat_an_earlier_line(
    dirty: tuple[EventsGenSummary, list[Line]],
) -> None:
    summary, lines = dirty
    first: dict[str, Line] = {}
    dups: list[tuple[Line, Line]] = []
    for ln in lines:
        if ln.raw in first:
            dups.append((first[ln.raw], ln))
        else:
            first[ln.raw] = ln
    assert len(dups) == summary.duplicates
    assert all(0 <= (dup.folder - orig.folder).days <= 2 for orig, dup in dups)
    same_file = sum(dup.folder == orig.folder for orig, dup in dups)
    assert 0.3 * len(dups) < same_file < 0.8 * len(dups)
    share = len(dups) / len(first)
    assert RATE * 0.8 < share < RATE * 1.2


def test_late_events_arrive_one_to_three_days_later(
    dirty: tuple[EventsGenSummary, list[Line]],
) -> None:
    summary, lines = dirty
    last = max(ln.folder for ln in lines)
    delays: Counter[int] = Counter()
    eligible = 0
    for ln in distinct(lines):
        day = tokyo_date(ln.ev.get("timestamp"))
        if day is None:
            continue
        assert ln.folder >= day
        eligible += day < last
        if ln.folder > day:
            delays[(ln.folder - day).days] += 1
    assert sum(delays.values()) == summary.late
    assert set(delays) <= {1, 2, 3} and delays[1] > 0 and delays[2] > 0
    assert RATE * 0.7 < summary.late / eligible < RATE * 1.3
