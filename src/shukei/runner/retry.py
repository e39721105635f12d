"""Retry work that failed for a transient reason (a dropped connection, a serialization failure).

Only `TransientEngineError` is retried, with exponential backoff and jitter and a bounded number
of tries, each logged. Before a retry the connection is re-opened (which re-takes the writer lock)
and the run's session context is bound again. A transaction that failed was rolled back, so a retry
starts from a clean state: no date is ever half written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from shukei.engines.base import Engine
from shukei.errors import TransientEngineError

log = logging.getLogger("shukei.runner")
T = TypeVar("T")

ATTEMPTS = 5


def retrying(engine: Engine, what: str, fn: Callable[[], T], on_reconnect: Callable[[], None]) -> T:
    """Run `fn`; on a transient failure reconnect, call `on_reconnect`, and try again."""
    from tenacity import (
        RetryCallState,
        Retrying,
        retry_if_exception_type,
        stop_after_attempt,
        wait_exponential_jitter,
    )

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s failed (attempt %d of %d): %s; retrying", what, state.attempt_number, ATTEMPTS, exc
        )

    for attempt in Retrying(
        retry=retry_if_exception_type(TransientEngineError),
        stop=stop_after_attempt(ATTEMPTS),
        wait=wait_exponential_jitter(multiplier=0.2, max=5),
        before_sleep=before_sleep,
        reraise=True,
    ):
        with attempt:
            if attempt.retry_state.attempt_number > 1:
                engine.reconnect()
                on_reconnect()
            return fn()
    raise AssertionError("unreachable")
