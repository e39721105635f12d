"""Alerts to a Slack-style incoming webhook (`{"text": ...}`), best effort.

An alert that cannot be delivered is retried a few times with a bounded timeout per attempt,
logged, and then dropped: alerting never fails or hangs the pipeline. The webhook URL is a secret
and never appears in a log line.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("shukei.alerts")


def send_alert(settings: Any, text: str) -> bool:
    """POST `text` to the configured webhook; True when it was delivered."""
    secret = settings.alert_webhook_url
    if secret is None:
        return False
    # Imported here: urllib.request costs 10 ms, and most runs send no alert.
    import urllib.request

    from tenacity import Retrying, stop_after_attempt, wait_exponential

    url = secret.get_secret_value()
    body = json.dumps({"text": text}, ensure_ascii=False).encode()
    tries = int(settings.alert_retries)
    try:
        for attempt in Retrying(
            stop=stop_after_attempt(tries),
            wait=wait_exponential(multiplier=0.2, max=2),
            reraise=True,
        ):
            with attempt:
                n = attempt.retry_state.attempt_number
                try:
                    req = urllib.request.Request(
                        url, data=body, headers={"Content-Type": "application/json"}
                    )
                    with urllib.request.urlopen(req, timeout=settings.alert_timeout) as resp:
                        resp.read()
                except Exception as exc:
                    log.warning(
                        "alert not delivered (attempt %d of %d): %s",
                        n,
                        tries,
                        str(exc).replace(url, "<webhook>"),
                    )
                    raise
        return True
    except Exception:
        log.error("alert dropped after %d attempt(s)", tries)
        return False
