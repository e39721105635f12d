"""Alerts: a Slack-style `{"text": ...}` POST for a blocked batch, a failed run and (with
alert_on_success) a successful run; an undeliverable alert never fails or hangs the pipeline, and
the webhook URL never shows up in any output.

The webhook is a real HTTP server on 127.0.0.1 (http.server in a thread, port 0) that records every
POST; it can answer 200, answer 500, or not answer at all.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from shukei.errors import GateBlocked
from shukei.project import Project

EVENTS_PIPELINE = Path(__file__).resolve().parents[1] / "src" / "shukei" / "pipelines" / "events"


class Hook(ThreadingHTTPServer):
    """A webhook that records (path, content type, body) of every POST."""

    daemon_threads = True
    block_on_close = False  # a handler kept waiting must not hold up shutdown

    def __init__(self, status: int, delay: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = status
        self.delay = delay  # seconds to wait before answering
        self.release = threading.Event()  # set at teardown: waiting handlers answer now
        self.lock = threading.Lock()
        self.posts: list[tuple[str, str, bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def texts(self) -> list[str]:
        with self.lock:
            docs = [json.loads(body) for _, _, body in self.posts]
        assert all(set(d) == {"text"} for d in docs), docs  # the Slack payload: text only
        return [d["text"] for d in docs]


class _Handler(BaseHTTPRequestHandler):
    server: Hook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.posts.append((self.path, self.headers.get("Content-Type", ""), body))
        if self.server.delay:
            self.server.release.wait(self.server.delay)
        try:
            self.send_response(self.server.status)
            self.end_headers()
            self.wfile.write(b"ok")
        except OSError:  # the client gave up waiting
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hooks() -> Iterator[Callable[..., Hook]]:
    """Start webhooks; every one is shut down after the test."""
    started: list[tuple[Hook, threading.Thread]] = []

    def start(status: int = 200, delay: float = 0.0) -> Hook:
        hook = Hook(status, delay)
        thread = threading.Thread(target=hook.serve_forever, daemon=True)
        thread.start()
        started.append((hook, thread))
        return hook

    yield start
    for hook, thread in started:
        hook.release.set()
        hook.shutdown()
        hook.server_close()
        thread.join(timeout=5)


def closed_port() -> int:
    """A local port with nothing listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


@pytest.fixture
def alert_log() -> Iterator[Records]:
    """The shukei.alerts logger's records (attached directly: no propagation needed)."""
    handler = Records()
    logger = logging.getLogger("shukei.alerts")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def t(day: int, hh: int, mm: int = 0) -> str:
    return f"2025-12-{day:02d}T{hh:02d}:{mm:02d}:00+09:00"


def page_view(event_id: str, session: str, ts: str, **fields: Any) -> dict[str, Any]:
    e = {
        "event_id": event_id,
        "event_type": "page_view",
        "user_id": "U1",
        "session_id": session,
        "timestamp": ts,
        "platform": "web",
        "device_type": "desktop",
        "page_url": "/home",
        "page_type": "home",
        **fields,
    }
    return {k: v for k, v in e.items() if v is not None}


def write_jsonl(path: Path, events: Sequence[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def good_batch(folder: Path, tag: str, day: int = 1) -> Path:
    """Three valid page views on 2025-12-<day>."""
    return write_jsonl(
        folder / f"events_{tag}.jsonl",
        [page_view(f"{tag}-{i}", f"{tag}-S", t(day, 10, i)) for i in range(3)],
    )


def blocked_batch(folder: Path, tag: str) -> Path:
    """Four page views, one without page_url: 3 / 4 = 75% pass, below the default 99%."""
    events = [page_view(f"{tag}-{i}", f"{tag}-S", t(1, 10, i)) for i in range(3)]
    events.append(page_view(f"{tag}-3", f"{tag}-S", t(1, 10, 3), page_url=None))
    return write_jsonl(folder / f"events_{tag}.jsonl", events)


def with_settings(project: Project, **settings: Any) -> Project:
    return Project(warehouse=project.settings.warehouse, lock_timeout=5, **settings)


# ---------------------------------------------------------------------------------------------
# What is posted
# ---------------------------------------------------------------------------------------------


def test_blocked_batch_posts_an_alert(
    project: Project, hooks: Callable[..., Hook], tmp_path: Path
) -> None:
    hook = hooks()
    p = with_settings(project, alert_webhook_url=hook.url + "/hook")
    with pytest.raises(GateBlocked):
        p.ingest("events", [blocked_batch(tmp_path / "in", "b")])
    assert [(path, ctype) for path, ctype, _ in hook.posts] == [("/hook", "application/json")]
    [text] = hook.texts()
    assert "events" in text and "batch 1" in text and "BLOCKED" in text
    assert "75.00%" in text  # the pass rate, 3 of 4
    assert "required_fields" in text  # the failing check


def strict_pipeline(root: Path) -> Path:
    """A user pipeline: the built-in events pipeline plus a blocking check that always fails."""
    folder = root / "events_strict"
    shutil.copytree(EVENTS_PIPELINE, folder)
    toml = folder / "pipeline.toml"
    text = toml.read_text(encoding="utf-8")
    assert 'name = "events"\n' in text
    text = text.replace('name = "events"\n', 'name = "events_strict"\n', 1)
    text += (
        "\n[[checks]]\n"
        'name = "no_page_views_allowed"\n'
        'kind = "sql"\n'
        'table = "marts.mart_user_daily"\n'
        'sql = "SELECT * FROM marts.mart_user_daily WHERE event_date IN @dates '
        'AND page_views > 0"\n'
    )
    toml.write_text(text, encoding="utf-8")
    return root


def test_failed_run_posts_an_alert(
    project: Project, hooks: Callable[..., Hook], tmp_path: Path
) -> None:
    hook = hooks()
    pipes = strict_pipeline(tmp_path / "pipes")
    p = with_settings(project, pipeline_paths=[pipes], alert_webhook_url=hook.url + "/hook")
    p.ingest("events_strict", [good_batch(tmp_path / "in", "g")])
    assert hook.posts == []  # a batch that passes the gate sends nothing
    rep = p.run("events_strict")
    assert rep.status != "success"
    assert [str(d) for d in rep.failed] == ["2025-12-01"]
    [text] = hook.texts()
    assert "events_strict" in text and "failed" in text
    assert "2025-12-01" in text and "no_page_views_allowed" in text
    assert rep.run_id in text


def test_success_alert_only_with_alert_on_success(
    project: Project, hooks: Callable[..., Hook], tmp_path: Path
) -> None:
    hook = hooks()
    quiet = with_settings(project, alert_webhook_url=hook.url + "/hook")
    quiet.ingest("events", [good_batch(tmp_path / "a", "a", day=1)])
    assert quiet.run("events").status == "success"
    assert hook.posts == []  # success, and alert_on_success is off

    loud = with_settings(project, alert_webhook_url=hook.url + "/hook", alert_on_success=True)
    loud.ingest("events", [good_batch(tmp_path / "b", "b", day=2)])
    rep = loud.run("events")
    assert rep.status == "success" and [str(d) for d in rep.built] == ["2025-12-02"]
    [text] = hook.texts()
    assert "events" in text and rep.run_id in text
    assert "succeeded" in text and "1 date(s) rebuilt" in text


# ---------------------------------------------------------------------------------------------
# Undeliverable alerts
# ---------------------------------------------------------------------------------------------

TIMEOUT, RETRIES = 0.5, 3
# Per attempt at most TIMEOUT; tenacity waits 0.2 s then 0.4 s between the three attempts; the
# rest is the run itself (slack for a loaded machine). The silent webhook would hold each attempt
# 30 s without a timeout.
BOUND = TIMEOUT * RETRIES + 8.0


@pytest.fixture
def duck_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """For engine-independent tests: a Project on a fresh DuckDB file, no SHUKEI_* leaking in."""
    for k in list(os.environ):
        if k.startswith("SHUKEI_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    return Project(warehouse=f"duckdb:///{tmp_path / 'wh' / 'shukei.duckdb'}", lock_timeout=5)


@pytest.mark.parametrize("kind", ["refused", "error500", "silent"])
def test_undeliverable_alert_never_fails_or_hangs_the_run(
    kind: str,
    duck_project: Project,
    hooks: Callable[..., Hook],
    alert_log: Records,
    tmp_path: Path,
) -> None:
    """Delivery is engine-independent (one DuckDB warehouse)."""
    secret = "/services/T000/B000/xoxb-s3cr3t-t0k3n"
    hook: Hook | None = None
    if kind == "refused":
        url = f"http://127.0.0.1:{closed_port()}{secret}"
    else:
        # "silent" holds the request 30 s, far beyond the timeout of 0.5 s per attempt
        hook = hooks(status=500) if kind == "error500" else hooks(delay=30.0)
        url = hook.url + secret
    p = with_settings(
        duck_project,
        alert_webhook_url=url,
        alert_on_success=True,
        alert_timeout=TIMEOUT,
        alert_retries=RETRIES,
    )
    p.ingest("events", [good_batch(tmp_path / "in", "u")])
    start = time.monotonic()
    rep = p.run("events")
    elapsed = time.monotonic() - start
    assert rep.status == "success" and [str(d) for d in rep.built] == ["2025-12-01"]
    assert elapsed < BOUND, elapsed
    if hook is not None:
        assert len(hook.posts) == RETRIES  # every attempt reached the server
        assert {path for path, _, _ in hook.posts} == {secret}
    warnings = alert_log.messages(logging.WARNING)
    assert [w.split(":")[0] for w in warnings] == [
        f"alert not delivered (attempt {n} of {RETRIES})" for n in range(1, RETRIES + 1)
    ]
    assert alert_log.messages(logging.ERROR) == [f"alert dropped after {RETRIES} attempt(s)"]
    for r in alert_log.records:
        assert "s3cr3t" not in r.getMessage()


def test_cli_never_prints_the_webhook_url(
    hooks: Callable[..., Hook], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verbose CLI runs with a log file: a blocked batch, a good batch and a successful run
    (alert_on_success) against a webhook answering 500; then, with JSON logs, a run with a
    webhook URL urllib refuses outright (its error message would quote the URL)."""
    monkeypatch.chdir(tmp_path)
    token = "xoxb-5ecret-T0KEN-4f2a9c"
    secret = f"/services/TSECRET1/BSECRET2/{token}"
    hook = hooks(status=500)
    wh = f"duckdb:///{tmp_path / 'wh' / 'shukei.duckdb'}"
    env = {
        "SHUKEI_ALERT_WEBHOOK_URL": hook.url + secret,
        "SHUKEI_ALERT_ON_SUCCESS": "true",
        "SHUKEI_ALERT_TIMEOUT": "0.5",
        "SHUKEI_ALERT_RETRIES": "2",
    }
    log_file = tmp_path / "shukei.log"
    common = ["--warehouse", wh, "-v", "--log-file", str(log_file)]
    blocked = run_cli(*common, "ingest", "events", str(blocked_batch(tmp_path / "x", "x")), env=env)
    assert blocked.returncode == 1, blocked.stderr
    good = run_cli(*common, "ingest", "events", str(good_batch(tmp_path / "g", "g")), env=env)
    assert good.returncode == 0, good.stderr
    ran = run_cli(*common, "run", "events", env=env)
    assert ran.returncode == 0, ran.stderr
    # The 500 webhook got both attempts of the blocked-batch alert and of the success alert.
    assert len(hook.posts) == 4 and {path for path, _, _ in hook.posts} == {secret}

    # The scheme forgotten: urllib's error quotes the whole URL ("unknown url type: '...'").
    env["SHUKEI_ALERT_WEBHOOK_URL"] = f"hooks.example.invalid{secret}"
    json_log = tmp_path / "shukei.jsonl"
    again = run_cli(
        "--warehouse",
        wh,
        "-v",
        "--log-format",
        "json",
        "--log-file",
        str(json_log),
        "run",
        "events",
        env=env,
    )
    assert again.returncode == 0, again.stderr  # nothing to do: still a success, still alerted
    logs = [log_file.read_text(encoding="utf-8"), json_log.read_text(encoding="utf-8")]
    assert all("alert not delivered" in text for text in logs)
    for out in [*logs, *(x for r in (blocked, good, ran, again) for x in (r.stdout, r.stderr))]:
        for leak in (token, "TSECRET1", "BSECRET2", "/services/", "hooks.example"):
            assert leak not in out, out
