"""The events pipeline: its seven gate checks, the gate threshold, the four marts, late and re-sent
events, `quality` and `schema`.

All input is hand-made JSONL written here with the json module. Every expected number is computed
by hand in a comment next to it. Timestamps carry an offset (+09:00 is Tokyo local time, Z is UTC);
the event date is the timestamp's Asia/Tokyo date.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import pg
from conftest import ENGINES, Warehouse, query, run_cli
from shukei.errors import GateBlocked
from shukei.project import Project

CHECKS = (
    "required_fields",
    "duplicate_event_id",
    "value_ranges",
    "funnel_order",
    "timestamp",
    "amount_consistency",
    "platform_device",
)
D1, D2 = date(2025, 12, 1), date(2025, 12, 2)
DROP = object()  # a field value meaning "leave the field out of the line"
MakeProject = Callable[..., Project]

# What each event type needs besides the common fields (overridable per event).
TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "page_view": {"page_url": "/home", "page_type": "home"},
    "click": {"element_id": "buy-button", "element_type": "button"},
    "add_to_cart": {"product_id": "P1", "quantity": 1, "unit_price": 10.0},
    "purchase": {"payment_method": "credit_card"},
    "search": {"search_query": "shoes", "result_count": 3},
}


def t(day: int, hh: int, mm: int = 0) -> str:
    """A Tokyo local time on 2025-12-<day> with an explicit +09:00 offset."""
    return f"2025-12-{day:02d}T{hh:02d}:{mm:02d}:00+09:00"


def ev(
    event_id: str,
    event_type: str,
    user: str,
    session: str,
    ts: str,
    platform: str = "web",
    device: str = "desktop",
    **fields: Any,
) -> dict[str, Any]:
    """One event; `field=DROP` leaves a field out."""
    e: dict[str, Any] = {
        "event_id": event_id,
        "event_type": event_type,
        "user_id": user,
        "session_id": session,
        "timestamp": ts,
        "platform": platform,
        "device_type": device,
        **TYPE_DEFAULTS.get(event_type, {}),
        **fields,
    }
    return {k: v for k, v in e.items() if v is not DROP}


def item(product: str, quantity: int, price: float) -> dict[str, Any]:
    return {"product_id": product, "quantity": quantity, "unit_price": price}


def write_jsonl(path: Path, events: Sequence[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


@pytest.fixture
def make(project: Project) -> MakeProject:
    """Projects on the fixture's (engine-parametrised) warehouse, with extra settings."""

    def build(**settings: Any) -> Project:
        return Project(warehouse=project.settings.warehouse, lock_timeout=5, **settings)

    return build


def quality_rows(wh: Warehouse, batch_id: int) -> dict[str, tuple[Any, ...]]:
    rows = query(
        wh,
        "SELECT check_name, checked, failed, batch_status FROM shukei.quality_log "
        "WHERE pipeline = 'events' AND batch_id = ?",
        (batch_id,),
    )
    return {r[0]: r[1:] for r in rows}


def quarantined(wh: Warehouse, batch_id: int) -> list[tuple[Any, ...]]:
    return sorted(
        query(
            wh,
            "SELECT event_id, _row_no, _reason FROM staging.events_quarantine WHERE _batch_id = ?",
            (batch_id,),
        )
    )


def raw_rows(wh: Warehouse, batch_id: int) -> list[tuple[Any, ...]]:
    return sorted(
        query(wh, "SELECT event_id, _row_no FROM raw.events WHERE _batch_id = ?", (batch_id,))
    )


# ---------------------------------------------------------------------------------------------
# Each check alone
# ---------------------------------------------------------------------------------------------


def base(tag: str) -> list[dict[str, Any]]:
    """Six valid events of two sessions on D1; ids and sessions prefixed with `tag`.

    S1 (web/desktop): view, click, cart P1 x2 @10.00, purchase with discount and shipping:
        total 2 * 10.00 - 1.50 + 3.00 = 21.50.
    S2 (ios/mobile): cart P2 x1 @5.25, purchase of two lines without discount or shipping:
        total 1 * 5.25 + 3 * 2.10 = 5.25 + 6.30 = 11.55.
    """
    s1, s2 = f"{tag}-S1", f"{tag}-S2"
    return [
        ev(f"{tag}-e1", "page_view", "U1", s1, t(1, 10, 0)),
        ev(f"{tag}-e2", "click", "U1", s1, t(1, 10, 1)),
        ev(f"{tag}-e3", "add_to_cart", "U1", s1, t(1, 10, 2), quantity=2, unit_price=10.0),
        ev(
            f"{tag}-e4",
            "purchase",
            "U1",
            s1,
            t(1, 10, 3),
            order_id=f"{tag}-O1",
            items=[item("P1", 2, 10.0)],
            discount_amount=1.5,
            shipping_fee=3.0,
            total_amount=21.5,
        ),
        ev(
            f"{tag}-e5",
            "add_to_cart",
            "U2",
            s2,
            t(1, 11, 0),
            "ios",
            "mobile",
            product_id="P2",
            unit_price=5.25,
        ),
        ev(
            f"{tag}-e6",
            "purchase",
            "U2",
            s2,
            t(1, 11, 5),
            "ios",
            "mobile",
            order_id=f"{tag}-O2",
            items=[item("P2", 1, 5.25), item("P3", 3, 2.1)],
            total_amount=11.55,
            payment_method="paypal",
        ),
    ]


# Each variant: (name, a function tag -> the one bad event, appended after base(tag)).
Variant = tuple[str, Callable[[str], dict[str, Any]]]
VARIANTS: dict[str, list[Variant]] = {
    "required_fields": [
        (
            "click without element_id",
            lambda g: ev(f"{g}-bad", "click", "U1", f"{g}-S1", t(1, 10, 5), element_id=DROP),
        ),
    ],
    "duplicate_event_id": [
        (
            # the second event carrying the id of the click e2 (row 2) in the same batch
            "id reused within the batch",
            lambda g: ev(f"{g}-e2", "page_view", "U1", f"{g}-S1", t(1, 10, 6)),
        ),
        (
            # the id of the first variant's page view, loaded by the batch before
            "id already loaded",
            lambda g: ev("dupl1-e1", "page_view", "U1", f"{g}-S1", t(1, 10, 6)),
        ),
    ],
    "value_ranges": [
        (
            "quantity 0",
            lambda g: ev(f"{g}-bad", "add_to_cart", "U1", f"{g}-S1", t(1, 10, 5), quantity=0),
        ),
        (
            # alone in its session, so the session keeps one platform
            "unknown platform",
            lambda g: ev(f"{g}-bad", "page_view", "U3", f"{g}-S9", t(1, 12, 0), "windows"),
        ),
        (
            "negative result_count",
            lambda g: ev(
                f"{g}-bad", "search", "U2", f"{g}-S2", t(1, 11, 2), "ios", "mobile", result_count=-1
            ),
        ),
        (
            # consistent total: 2 * 10.00 + 1 * (-5.00) = 15.00; the session has a cart before
            "item with a negative price",
            lambda g: ev(
                f"{g}-bad",
                "purchase",
                "U1",
                f"{g}-S1",
                t(1, 10, 7),
                order_id=f"{g}-O9",
                items=[item("P1", 2, 10.0), item("P2", 1, -5.0)],
                total_amount=15.0,
            ),
        ),
    ],
    "funnel_order": [
        (
            # S1's add_to_cart is at 10:02, after this purchase at 10:01
            "purchase before its session's add_to_cart",
            lambda g: ev(
                f"{g}-bad",
                "purchase",
                "U1",
                f"{g}-S1",
                t(1, 10, 1),
                order_id=f"{g}-O9",
                items=[item("P1", 1, 10.0)],
                total_amount=10.0,
            ),
        ),
    ],
    "timestamp": [
        (
            "not a real instant",
            lambda g: ev(f"{g}-bad", "page_view", "U3", f"{g}-S9", "2025-13-40T25:00:00"),
        ),
        (
            "year 1999",
            lambda g: ev(f"{g}-bad", "page_view", "U3", f"{g}-S9", "1999-06-01T10:00:00+09:00"),
        ),
        (
            "far future",
            lambda g: ev(f"{g}-bad", "page_view", "U3", f"{g}-S9", "2099-01-01T10:00:00+09:00"),
        ),
    ],
    "amount_consistency": [
        (
            # right total 2 * 10.00 - 1.50 + 3.00 = 21.50; sent 21.51
            "total off by 0.01",
            lambda g: ev(
                f"{g}-bad",
                "purchase",
                "U1",
                f"{g}-S1",
                t(1, 10, 8),
                order_id=f"{g}-O9",
                items=[item("P1", 2, 10.0)],
                discount_amount=1.5,
                shipping_fee=3.0,
                total_amount=21.51,
            ),
        ),
    ],
    "platform_device": [
        (
            "ios on a desktop",
            lambda g: ev(f"{g}-bad", "page_view", "U3", f"{g}-S9", t(1, 12, 0), "ios", "desktop"),
        ),
        (
            # S1 started on web at 10:00; this later event of S1 is on android
            "session switching platform",
            lambda g: ev(
                f"{g}-bad", "page_view", "U1", f"{g}-S1", t(1, 10, 9), "android", "mobile"
            ),
        ),
    ],
}
TAGS = {c: c.split("_")[0][:4] for c in CHECKS}  # id prefixes: requ1, dupl1, valu1, ...
TWO = "two1"  # the batch whose bad event fails two checks


def two_checks_bad(g: str) -> dict[str, Any]:
    """A click without element_id (required_fields) on ios/desktop (platform_device), alone in
    its session."""
    return ev(f"{g}-bad", "click", "U3", f"{g}-S9", t(1, 12, 0), "ios", "desktop", element_id=DROP)


def new_warehouse(name: str, root: Path) -> tuple[str, Warehouse]:
    if name == "postgresql" and pg.admin_url() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no PostgreSQL server or binaries are available")
        pytest.skip("no PostgreSQL server is running and no PostgreSQL binaries were found")
    if name == "duckdb":
        path = root / "wh" / "shukei.duckdb"
        return f"duckdb:///{path}", path
    url = pg.create_database()
    return url, url


@contextlib.contextmanager
def clean_env(root: Path) -> Iterator[None]:
    """No shukei.toml or SHUKEI_* variables leak into a module-scoped build."""
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith("SHUKEI_"):
                mp.delenv(k)
        mp.chdir(root)
        yield


def plan() -> list[tuple[str, Callable[[str], dict[str, Any]]]]:
    """(tag, bad event) of every batch, in ingest order: each check's variants, the two-check
    event, and last the first timestamp variant (so `quality` has a trend down and up)."""
    batches = [
        (f"{TAGS[c]}{i}", bad) for c in CHECKS for i, (_, bad) in enumerate(VARIANTS[c], start=1)
    ]
    last = next(b for b in batches if b[0] == "time1")
    batches.remove(last)
    return [*batches, (TWO, two_checks_bad), last]


@dataclass
class GateBuild:
    """One warehouse per engine: every variant's batch (base(tag) + its one bad event), then one
    run. What the tests read back, fetched once."""

    batches: dict[str, tuple[int, dict[str, Any], list[dict[str, Any]]]]  # tag -> id, bad, good
    quality: dict[int, dict[str, tuple[Any, ...]]] = field(default_factory=dict)
    quarantine: dict[int, list[tuple[Any, ...]]] = field(default_factory=dict)
    raw: dict[int, list[tuple[Any, ...]]] = field(default_factory=dict)
    staging: set[str] = field(default_factory=set)
    run_status: str = ""
    quality_cli: tuple[int, str, str] = (-1, "", "")


@pytest.fixture(scope="module", params=ENGINES)
def gate_build(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GateBuild]:
    name = str(request.param)
    root = tmp_path_factory.mktemp(f"gate_{name}")
    url, wh = new_warehouse(name, root)
    try:
        with clean_env(root):
            p = Project(warehouse=url, lock_timeout=5, gate_threshold=0.5)
            build = GateBuild({})
            for tag, bad in plan():
                good = base(tag)
                bad_event = bad(tag)
                rep = p.ingest(
                    "events", [write_jsonl(root / tag / "events_1.jsonl", [*good, bad_event])]
                )
                assert rep.batch_id is not None
                build.batches[tag] = (rep.batch_id, bad_event, good)
            build.run_status = p.run("events").status
        for r in query(
            wh,
            "SELECT batch_id, check_name, checked, failed, batch_status FROM shukei.quality_log "
            "WHERE pipeline = 'events'",
        ):
            build.quality.setdefault(r[0], {})[r[1]] = r[2:]
        for r in query(
            wh, "SELECT _batch_id, event_id, _row_no, _reason FROM staging.events_quarantine"
        ):
            build.quarantine.setdefault(r[0], []).append(r[1:])
        for r in query(wh, "SELECT _batch_id, event_id, _row_no FROM raw.events"):
            build.raw.setdefault(r[0], []).append(r[1:])
        build.staging = {r[0] for r in query(wh, "SELECT event_id FROM staging.events")}
        res = run_cli("--warehouse", url, "quality", "events", "--json", cwd=root)
        build.quality_cli = (res.returncode, res.stdout, res.stderr)
        yield build
    finally:
        if name == "postgresql":
            pg.drop_database(url)


@pytest.mark.parametrize("check", CHECKS)
def test_one_event_fails_only_its_check(check: str, gate_build: GateBuild) -> None:
    assert gate_build.run_status == "success"
    for i, (name, _) in enumerate(VARIANTS[check], start=1):
        bid, bad, good = gate_build.batches[f"{TAGS[check]}{i}"]
        n = len(good) + 1
        # One failing row of n: pass rate (n - 1) / n >= 0.5, so the batch loads.
        assert gate_build.quality[bid] == {
            **{c: (n, 1 if c == check else 0, "loaded") for c in CHECKS},
            "*": (n, 1, "loaded"),
        }, name
        # The bad event is the last line (row n); its reason is exactly the check's name.
        assert sorted(gate_build.quarantine.get(bid, [])) == [(bad["event_id"], n, check)], name
        assert sorted(gate_build.raw.get(bid, [])) == sorted(
            (e["event_id"], row) for row, e in enumerate(good, start=1)
        ), name
        assert {e["event_id"] for e in good} <= gate_build.staging, name


def test_valid_events_reach_staging_and_nothing_else(gate_build: GateBuild) -> None:
    valid = {e["event_id"] for _, _, good in gate_build.batches.values() for e in good}
    assert gate_build.staging == valid


def test_event_failing_two_checks_lists_both(gate_build: GateBuild) -> None:
    bid, bad, good = gate_build.batches[TWO]
    assert gate_build.quarantine[bid] == [
        (bad["event_id"], len(good) + 1, "platform_device; required_fields")
    ]
    log = gate_build.quality[bid]
    assert {c: log[c][1] for c in CHECKS} == {
        c: int(c in ("platform_device", "required_fields")) for c in CHECKS
    }
    assert log["*"] == (7, 1, "loaded")  # one event failing two checks is one failing row


def test_checks_see_sessions_of_an_earlier_batch(
    make: MakeProject, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    """Batch 1 holds session fS's add_to_cart and session kS's first event (web). Batch 2 holds
    fS's purchase (passes funnel_order) and a later android event of kS (fails platform_device).
    No run in between: batch 1 is loaded, that is enough."""
    p = make(gate_threshold=0.5)
    first = [
        ev("f1", "page_view", "U1", "fS", t(1, 10, 0)),
        ev("f2", "add_to_cart", "U1", "fS", t(1, 10, 1)),  # P1 x1 @10.00
        ev("k1", "page_view", "U2", "kS", t(1, 10, 0)),
    ]
    p.ingest("events", [write_jsonl(tmp_path / "events_1.jsonl", first)])
    second = [
        # 1 * 10.00 = 10.00
        ev(
            "f3",
            "purchase",
            "U1",
            "fS",
            t(1, 10, 5),
            order_id="fO",
            items=[item("P1", 1, 10.0)],
            total_amount=10.0,
        ),
        ev("k2", "page_view", "U2", "kS", t(1, 10, 5), "android", "mobile"),
        ev("x1", "page_view", "U3", "xS", t(1, 11, 0)),
    ]
    p.ingest("events", [write_jsonl(tmp_path / "events_2.jsonl", second)])
    assert quarantined(warehouse_path, 2) == [("k2", 2, "platform_device")]
    assert raw_rows(warehouse_path, 2) == [("f3", 1), ("x1", 3)]


# ---------------------------------------------------------------------------------------------
# The threshold
# ---------------------------------------------------------------------------------------------


def hundred(tag: str, failing: int) -> list[dict[str, Any]]:
    """100 page views in 100 sessions; the first `failing` lack their page_url."""
    return [
        ev(
            f"{tag}-{i}",
            "page_view",
            f"U{i % 7}",
            f"{tag}-S{i}",
            t(1, 9, i % 60),
            page_url=DROP if i < failing else "/home",
        )
        for i in range(100)
    ]


def test_gate_at_and_around_the_threshold(
    make: MakeProject, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    p = make()  # gate_threshold defaults to 0.99
    assert p.settings.gate_threshold == 0.99
    # 1 of 100 failing: pass rate 99 / 100 = 0.99, not below 0.99 -> loaded.
    rep = p.ingest("events", [write_jsonl(tmp_path / "a" / "events_a.jsonl", hundred("a", 1))])
    assert rep.gate is not None and rep.gate.pass_rate == 0.99 and not rep.gate.blocked
    assert len(raw_rows(warehouse_path, 1)) == 99
    assert quarantined(warehouse_path, 1) == [("a-0", 1, "required_fields")]
    assert quality_rows(warehouse_path, 1)["*"] == (100, 1, "loaded")

    # 2 of 100 failing: 98 / 100 = 0.98 < 0.99 -> blocked, nothing loaded.
    blocked_file = write_jsonl(tmp_path / "b" / "events_b.jsonl", hundred("b", 2))
    with pytest.raises(GateBlocked) as exc:
        p.ingest("events", [blocked_file])
    assert "98.00%" in str(exc.value)
    assert query(warehouse_path, "SELECT count(*) FROM raw.events WHERE event_id LIKE 'b-%'") == [
        (0,)
    ]
    assert query(
        warehouse_path, "SELECT count(*) FROM staging.events_quarantine WHERE event_id LIKE 'b-%'"
    ) == [(0,)]
    log = query(
        warehouse_path,
        "SELECT batch_id, check_name, failed, batch_status FROM shukei.quality_log "
        "WHERE batch_id > 1 ORDER BY check_name",
    )
    assert {(r[0], r[3]) for r in log} == {(2, "blocked")}
    assert {r[1]: r[2] for r in log} == {**{c: 0 for c in CHECKS}, "required_fields": 2, "*": 2}
    assert query(
        warehouse_path, "SELECT count(*) FROM shukei.files WHERE path = ?", (str(blocked_file),)
    ) == [(0,)]

    # The SAME file again, with the threshold lowered to 0.98: 0.98 is not below it -> loaded.
    rep = make(gate_threshold=0.98).ingest("events", [blocked_file])
    assert rep.batch_id is not None and not rep.skipped
    assert rep.gate is not None and rep.gate.pass_rate == 0.98 and not rep.gate.blocked
    assert len(raw_rows(warehouse_path, rep.batch_id)) == 98
    assert quarantined(warehouse_path, rep.batch_id) == [
        ("b-0", 1, "required_fields"),
        ("b-1", 2, "required_fields"),
    ]
    assert query(
        warehouse_path, "SELECT count(*) FROM shukei.files WHERE path = ?", (str(blocked_file),)
    ) == [(1,)]


def test_cli_blocked_batch_then_fixed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's exit code and output (engine-independent: one DuckDB warehouse)."""
    monkeypatch.chdir(tmp_path)
    warehouse_path = tmp_path / "wh" / "shukei.duckdb"
    warehouse_url = f"duckdb:///{warehouse_path}"
    folder = tmp_path / "in"
    write_jsonl(folder / "events_c.jsonl", hundred("c", 2))  # 98% < 99%
    res = run_cli("--warehouse", warehouse_url, "ingest", "events", str(folder), cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "98.00%" in errors[0], res.stderr

    res = run_cli(
        "--warehouse", warehouse_url, "ingest", "events", str(folder), "--json", cwd=tmp_path
    )
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["gate"]["status"] == "blocked"
    assert doc["gate"]["pass_rate"] == 0.98 and doc["gate"]["failed"] == 2
    assert len([line for line in res.stderr.splitlines() if line.startswith("Error:")]) == 1
    assert query(warehouse_path, "SELECT count(*) FROM raw.events") == [(0,)]

    # Fixed: the two bad lines get their page_url; the file is new content -> loads.
    fixed = hundred("c", 0)
    write_jsonl(folder / "events_c.jsonl", fixed)
    res = run_cli(
        "--warehouse", warehouse_url, "ingest", "events", str(folder), "--json", cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["gate"]["status"] == "passed" and doc["rows"] == 100
    assert query(warehouse_path, "SELECT count(*) FROM raw.events") == [(100,)]


# ---------------------------------------------------------------------------------------------
# The marts
# ---------------------------------------------------------------------------------------------

# Two Tokyo dates, two platforms, three users, six sessions.
MART_EVENTS = [
    # D1, S1: U1 web/desktop. Order O1: 2 * 10.00 + 1 * 5.50 + 1 * 2.00 - 1.50 + 3.00 = 29.00
    ev("a1", "page_view", "U1", "S1", t(1, 10, 0)),
    ev("a2", "click", "U1", "S1", t(1, 10, 1)),
    ev("a3", "add_to_cart", "U1", "S1", t(1, 10, 2), product_id="P1", quantity=2, unit_price=10.0),
    ev("a4", "add_to_cart", "U1", "S1", t(1, 10, 3), product_id="P2", quantity=1, unit_price=5.5),
    ev(
        "a5",
        "purchase",
        "U1",
        "S1",
        t(1, 10, 4),
        order_id="O1",
        items=[item("P1", 2, 10.0), item("P2", 1, 5.5), item("P3", 1, 2.0)],
        discount_amount=1.5,
        shipping_fee=3.0,
        total_amount=29.0,
    ),
    # D1, S2: U2 web/mobile
    ev("b1", "page_view", "U2", "S2", t(1, 11, 0), device="mobile"),
    ev("b2", "click", "U2", "S2", t(1, 11, 1), device="mobile"),
    ev("b3", "search", "U2", "S2", t(1, 11, 2), device="mobile", result_count=5),
    # D1, S3: U3 web/desktop, carts P1 x1 and P4 x2, buys nothing
    ev("c1", "page_view", "U3", "S3", t(1, 12, 0)),
    ev("c2", "click", "U3", "S3", t(1, 12, 1)),
    ev("c3", "add_to_cart", "U3", "S3", t(1, 12, 2), product_id="P1", quantity=1, unit_price=10.0),
    ev("c4", "add_to_cart", "U3", "S3", t(1, 12, 3), product_id="P4", quantity=2, unit_price=7.0),
    # D1, S4: U2 ios/mobile; 2025-11-30T16:00Z is 2025-12-01 01:00 in Tokyo
    ev("d1", "page_view", "U2", "S4", "2025-11-30T16:00:00Z", "ios", "mobile"),
    ev("d2", "page_view", "U2", "S4", t(1, 20, 0), "ios", "mobile"),
    # D2, S5: U1 ios/tablet; 2025-12-01T15:30Z is 2025-12-02 00:30 in Tokyo.
    # Order O2: 3 * 5.50 = 16.50
    ev("e1", "page_view", "U1", "S5", "2025-12-01T15:30:00Z", "ios", "tablet"),
    ev(
        "e2",
        "add_to_cart",
        "U1",
        "S5",
        "2025-12-01T15:31:00Z",
        "ios",
        "tablet",
        product_id="P2",
        quantity=3,
        unit_price=5.5,
    ),
    ev(
        "e3",
        "purchase",
        "U1",
        "S5",
        "2025-12-01T15:32:00Z",
        "ios",
        "tablet",
        order_id="O2",
        items=[item("P2", 3, 5.5)],
        total_amount=16.5,
        payment_method="paypal",
    ),
    # D2, S6: U3 web/desktop
    ev("f1", "search", "U3", "S6", t(2, 9, 0), search_query="bag", result_count=0),
    ev("f2", "page_view", "U3", "S6", t(2, 9, 1)),
]

# (event_date, user_id): sessions, page_views, clicks, searches, add_to_carts, purchases, revenue
USER_DAILY = {
    (D1, "U1"): (1, 1, 1, 0, 2, 1, Decimal("29.00")),  # S1: a1, a2, a3 a4, a5 (O1 29.00)
    (D1, "U2"): (2, 3, 1, 1, 0, 0, Decimal("0")),  # S2 + S4: b1 d1 d2, b2, b3
    (D1, "U3"): (1, 1, 1, 0, 2, 0, Decimal("0")),  # S3: c1, c2, c3 c4
    (D2, "U1"): (1, 1, 0, 0, 1, 1, Decimal("16.50")),  # S5: e1, e2, e3 (O2 16.50)
    (D2, "U3"): (1, 1, 0, 1, 0, 0, Decimal("0")),  # S6: f2, f1
}
# (event_date, platform): viewers, clickers, carters, purchasers, view->click, click->cart,
# cart->purchase, overall
FUNNEL = {
    # users: viewed U1 U2 U3, clicked U1 U2 U3, carted U1 U3, bought U1
    # 3/3 = 1.0, 2/3 = 0.66666.. -> 0.6667, 1/2 = 0.5, 1/3 = 0.33333.. -> 0.3333
    (D1, "web"): (3, 3, 2, 1, 1.0, 0.6667, 0.5, 0.3333),
    # U2 viewed only: 0/1 = 0.0, then 0/0 and 0/0 -> NULL, 0/1 = 0.0
    (D1, "ios"): (1, 0, 0, 0, 0.0, None, None, 0.0),
    # U1 viewed, carted, bought, no click: 0/1 = 0.0, 0/0 -> NULL, 1/1 = 1.0, 1/1 = 1.0
    (D2, "ios"): (1, 0, 1, 1, 0.0, None, 1.0, 1.0),
    # U3 viewed only (a search is no step): 0/1, NULL, NULL, 0/1
    (D2, "web"): (1, 0, 0, 0, 0.0, None, None, 0.0),
}
# (event_date, product_id): cart_adds, cart_quantity, purchases, purchased_quantity, revenue
PRODUCT_DAILY = {
    (D1, "P1"): (2, 3, 1, 2, Decimal("20.00")),  # carts a3 x2 + c3 x1; O1 line 2 * 10.00
    (D1, "P2"): (1, 1, 1, 1, Decimal("5.50")),  # cart a4 x1; O1 line 1 * 5.50
    (D1, "P3"): (0, 0, 1, 1, Decimal("2.00")),  # never carted; O1 line 1 * 2.00
    (D1, "P4"): (1, 2, 0, 0, Decimal("0")),  # cart c4 x2; never bought
    (D2, "P2"): (1, 3, 1, 3, Decimal("16.50")),  # cart e2 x3; O2 line 3 * 5.50
}
# order_id: event_date, user, session, platform, item_count, total, discount, shipping, payment
ORDERS = {
    "O1": (
        D1,
        "U1",
        "S1",
        "web",
        4,
        Decimal("29.00"),
        Decimal("1.50"),
        Decimal("3.00"),
        "credit_card",
    ),  # items 2 + 1 + 1
    "O2": (D2, "U1", "S5", "ios", 3, Decimal("16.50"), Decimal("0"), Decimal("0"), "paypal"),
}


def num(v: Any) -> Any:
    return Decimal(str(v)) if isinstance(v, Decimal | float) else v


def mart_user_daily(wh: Warehouse) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    rows = query(
        wh,
        "SELECT event_date, user_id, sessions, page_views, clicks, searches, add_to_carts, "
        "purchases, revenue FROM marts.mart_user_daily",
    )
    return {(r[0], r[1]): tuple(int(x) for x in r[2:8]) + (num(r[8]),) for r in rows}


def mart_funnel_daily(wh: Warehouse) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    rows = query(
        wh,
        "SELECT event_date, platform, viewers, clickers, carters, purchasers, view_to_click_rate, "
        "click_to_cart_rate, cart_to_purchase_rate, overall_conversion_rate "
        "FROM marts.mart_funnel_daily",
    )
    return {
        (r[0], r[1]): tuple(int(x) for x in r[2:6])
        + tuple(None if x is None else float(x) for x in r[6:])
        for r in rows
    }


def mart_product_daily(wh: Warehouse) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    rows = query(
        wh,
        "SELECT event_date, product_id, cart_adds, cart_quantity, purchases, purchased_quantity, "
        "revenue FROM marts.mart_product_daily",
    )
    return {(r[0], r[1]): tuple(int(x) for x in r[2:6]) + (num(r[6]),) for r in rows}


def mart_orders(wh: Warehouse) -> dict[str, tuple[Any, ...]]:
    rows = query(
        wh,
        "SELECT order_id, event_date, user_id, session_id, platform, item_count, total_amount, "
        "discount_amount, shipping_fee, payment_method FROM marts.mart_orders",
    )
    return {r[0]: (*r[1:5], int(r[5]), *(num(x) for x in r[6:9]), r[9]) for r in rows}


def all_marts(wh: Warehouse) -> dict[str, Any]:
    return {
        "user": mart_user_daily(wh),
        "funnel": mart_funnel_daily(wh),
        "product": mart_product_daily(wh),
        "orders": mart_orders(wh),
    }


@dataclass
class MartBuild:
    """Stage 1: MART_EVENTS ingested and run. Stage 2: a late event for D1, run. Stage 3: the
    first file again, then a new file re-sending two loaded events, run. Snapshots of each."""

    gate_failed: int = -1
    runs: list[dict[str, Any]] = field(default_factory=list)
    marts: list[dict[str, Any]] = field(default_factory=list)
    skipped: tuple[Any, list[str]] = (None, [])
    resend_batch: int | None = None
    resend_quarantine: list[tuple[Any, ...]] = field(default_factory=list)
    resend_raw: list[tuple[Any, ...]] = field(default_factory=list)
    first_file: str = ""


LATE = ev("late1", "page_view", "U4", "S7", t(1, 18, 0))  # a new user U4 on D1, web
# b1's id with other content (another user, moved to D2)
MOVED = {**MART_EVENTS[5], "timestamp": t(2, 15, 0), "user_id": "U9"}


@pytest.fixture(scope="module", params=ENGINES)
def mart_build(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MartBuild]:
    name = str(request.param)
    root = tmp_path_factory.mktemp(f"marts_{name}")
    url, wh = new_warehouse(name, root)
    b = MartBuild()
    try:
        with clean_env(root):
            p = Project(warehouse=url, lock_timeout=5)
            first = write_jsonl(root / "d1" / "events_all.jsonl", MART_EVENTS)
            b.first_file = str(first)
            rep = p.ingest("events", [first])
            b.gate_failed = rep.gate.failed if rep.gate is not None else -1
            b.runs.append(p.run("events").as_dict())
            b.marts.append(all_marts(wh))

            p.ingest("events", [write_jsonl(root / "d2" / "events_late.jsonl", [LATE])])
            b.runs.append(p.run("events").as_dict())
            b.marts.append(all_marts(wh))

            again = p.ingest("events", [first])
            b.skipped = (again.batch_id, again.skipped)
            # A new file: a1's line exactly as before, twice, and b1's id with other content.
            # Threshold 0, so the batch loads whatever its pass rate.
            resend = write_jsonl(
                root / "d3" / "events_resend.jsonl", [MART_EVENTS[0], MART_EVENTS[0], MOVED]
            )
            assert resend.read_text().splitlines()[0] == first.read_text().splitlines()[0]
            rep = Project(warehouse=url, lock_timeout=5, gate_threshold=0.0).ingest(
                "events", [resend]
            )
            b.resend_batch = rep.batch_id
            if rep.batch_id is not None:
                b.resend_quarantine = quarantined(wh, rep.batch_id)
                b.resend_raw = raw_rows(wh, rep.batch_id)
            b.runs.append(p.run("events").as_dict())
            b.marts.append(all_marts(wh))
        yield b
    finally:
        if name == "postgresql":
            pg.drop_database(url)


def assert_funnel(got: dict[tuple[Any, ...], tuple[Any, ...]], want: dict[Any, Any]) -> None:
    assert set(got) == set(want)
    for key, expected in want.items():
        row = got[key]
        assert row[:4] == expected[:4], key
        for g, e in zip(row[4:], expected[4:], strict=True):  # rates: exact to 4 places, or NULL
            assert (g is None and e is None) or (
                g is not None and e is not None and g == pytest.approx(e, abs=1e-9)
            ), (key, row)


def test_marts_on_hand_computed_data(mart_build: MartBuild) -> None:
    assert mart_build.gate_failed == 0  # every hand-made event is valid
    run = mart_build.runs[0]
    assert run["status"] == "success"
    assert run["dates"] == ["2025-12-01", "2025-12-02"]
    assert run["reasons"] == {"2025-12-01": "missing", "2025-12-02": "missing"}
    marts = mart_build.marts[0]
    assert marts["user"] == USER_DAILY
    assert_funnel(marts["funnel"], FUNNEL)
    assert marts["product"] == PRODUCT_DAILY
    assert marts["orders"] == ORDERS


# ---------------------------------------------------------------------------------------------
# Late and re-sent events
# ---------------------------------------------------------------------------------------------


def test_late_event_rebuilds_exactly_its_date(mart_build: MartBuild) -> None:
    run = mart_build.runs[1]
    assert run["status"] == "success"
    assert run["dates"] == ["2025-12-01"] and run["reasons"] == {"2025-12-01": "stale"}
    before, after = mart_build.marts[0], mart_build.marts[1]
    assert after["user"] == {**USER_DAILY, (D1, "U4"): (1, 1, 0, 0, 0, 0, Decimal("0"))}
    # D1 web: viewers U1 U2 U3 U4 = 4; 3/4 = 0.75, 2/3 -> 0.6667, 1/2 = 0.5, 1/4 = 0.25
    assert_funnel(after["funnel"], {**FUNNEL, (D1, "web"): (4, 3, 2, 1, 0.75, 0.6667, 0.5, 0.25)})
    assert after["product"] == before["product"] and after["orders"] == before["orders"]


def test_resent_events_are_duplicates_and_change_nothing(mart_build: MartBuild) -> None:
    # The same file again is skipped by content.
    assert mart_build.skipped == (None, [mart_build.first_file])
    # In a new file: b1's id carrying other content fails duplicate_event_id. An exact re-send
    # of a1 (twice) is no quality failure (sql/gate/duplicate_event_id.sql): it passes the gate
    # and staging counts it as a duplicate.
    assert mart_build.resend_batch == 3
    assert mart_build.resend_quarantine == [("b1", 3, "duplicate_event_id")]
    assert mart_build.resend_raw == [("a1", 1), ("a1", 2)]
    run = mart_build.runs[2]
    assert run["status"] == "success"
    assert run["batches"] == [
        {
            "batch_id": 3,
            "entities": {
                "events": {
                    "rows_in": 2,
                    "rows_used": 0,
                    "rows_superseded": 0,
                    "rows_duplicate": 2,
                    "rows_quarantined": 0,
                }
            },
        }
    ]
    # Nothing changed: no date rebuilt, every mart as after the late event.
    assert run["dates"] == [] and run["reasons"] == {}
    assert mart_build.marts[2] == mart_build.marts[1]


# ---------------------------------------------------------------------------------------------
# quality and schema
# ---------------------------------------------------------------------------------------------


def test_quality_json_history_and_trend(gate_build: GateBuild) -> None:
    """`shukei quality events --json` on the gate build's 15 batches of 7 events each."""
    code, out, err = gate_build.quality_cli
    assert code == 0, err
    doc = json.loads(out)
    assert doc["pipeline"] == "events"
    failing = {tag: {c for c in CHECKS if tag.startswith(TAGS[c])} for tag in gate_build.batches}
    failing[TWO] = {"platform_device", "required_fields"}
    by_id = {bid: failing[tag] for tag, (bid, _, _) in gate_build.batches.items()}
    assert sorted(by_id) == list(range(1, 16))
    rows = doc["batches"]
    assert [r["batch_id"] for r in rows] == [b for b in range(15, 0, -1) for _ in range(8)]
    for r in rows:
        bad = by_id[r["batch_id"]]
        fails = 1 if r["check"] == "*" or r["check"] in bad else 0
        assert (r["checked"], r["failed"], r["batch_status"]) == (7, fails, "loaded"), r
        assert r["pass_rate"] == pytest.approx(1 - fails / 7, abs=1e-6), r  # 6/7 or 1
    trend = {tr["check"]: tr for tr in doc["trend"]}
    assert set(trend) == {*CHECKS, "*"}
    # Batches failing each check (6/7 there, 1 elsewhere): mean = 1 - k / (7 * 15) = 1 - k / 105
    k = {c: sum(c in f for f in by_id.values()) for c in CHECKS} | {"*": 15}
    assert k == {
        "required_fields": 2,  # requ1, two1
        "duplicate_event_id": 2,
        "value_ranges": 4,
        "funnel_order": 1,
        "timestamp": 3,
        "amount_consistency": 1,
        "platform_device": 3,  # plat1, plat2, two1
        "*": 15,
    }
    for c, n in k.items():
        assert trend[c]["mean"] == pytest.approx(1 - n / 105, abs=1e-6), c
    # Newest first: batch 15 (time1: timestamp fails), batch 14 (two1).
    expected = {
        "timestamp": (6 / 7, "down"),  # 6/7 after 1
        "required_fields": (1.0, "up"),  # 1 after 6/7
        "platform_device": (1.0, "up"),
        "*": (6 / 7, "flat"),  # 6/7 after 6/7
        "duplicate_event_id": (1.0, "flat"),
        "value_ranges": (1.0, "flat"),
        "funnel_order": (1.0, "flat"),
        "amount_consistency": (1.0, "flat"),
    }
    for c, (latest, direction) in expected.items():
        assert trend[c]["latest"] == pytest.approx(latest, abs=1e-6), c
        assert trend[c]["trend"] == direction, c


@pytest.fixture(scope="module")
def schema_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What `shukei schema events` prints (no warehouse needed), parsed."""
    res = run_cli("schema", "events", cwd=tmp_path_factory.mktemp("schema"))
    assert res.returncode == 0, res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def test_schema_is_draft07_json(schema_doc: dict[str, Any]) -> None:
    doc = schema_doc
    assert doc["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert doc["type"] == "object"
    assert set(doc["required"]) == {
        "event_id",
        "event_type",
        "user_id",
        "session_id",
        "timestamp",
        "platform",
        "device_type",
    }
    assert set(doc["properties"]["event_type"]["enum"]) == {
        "page_view",
        "click",
        "add_to_cart",
        "purchase",
        "search",
    }


def test_schema_validates_hand_made_events(schema_doc: dict[str, Any]) -> None:
    import jsonschema  # a dev dependency

    doc = schema_doc
    validator = jsonschema.Draft7Validator(doc)
    jsonschema.Draft7Validator.check_schema(doc)
    for e in MART_EVENTS + base("s"):
        assert not list(validator.iter_errors(e)), e
    bad_type = {**MART_EVENTS[0], "event_type": "hover"}
    assert list(validator.iter_errors(bad_type))
    no_element = ev("x", "click", "U1", "S", t(1, 10), element_id=DROP)
    assert list(validator.iter_errors(no_element))
    ios_desktop = ev("y", "page_view", "U1", "S", t(1, 10), "ios", "desktop")
    assert list(validator.iter_errors(ios_desktop))
