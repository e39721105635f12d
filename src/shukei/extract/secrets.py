"""Where the source password comes from, and keeping it out of everything shukei prints.

In order: AWS Secrets Manager when `secret_arn` is set (boto3, an optional dependency), a password
file (`source_password_file`, e.g. a Docker/Kubernetes secret), else libpq's own ways: PGPASSFILE,
~/.pgpass, PGPASSWORD. A password written into the URL works too but is discouraged. Every secret
seen is registered with a `Scrubber` so that no log line, error, metric or JSON output carries it.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from shukei.errors import ShukeiError
from shukei.settings import redact_url


class SecretError(ShukeiError):
    """The source password could not be retrieved (file unreadable, secret provider failed)."""


@dataclass(frozen=True)
class Credentials:
    password: str | None = None
    user: str | None = None
    origin: str = "libpq"  # libpq | password_file | secret_arn

    def connect_kwargs(self) -> dict[str, str]:
        kw: dict[str, str] = {}
        if self.password is not None:
            kw["password"] = self.password
        if self.user is not None:
            kw["user"] = self.user
        return kw

    def __repr__(self) -> str:  # never show the password, even in a traceback's locals
        return f"Credentials(origin={self.origin!r}, user={self.user!r}, password=***)"


@dataclass
class Scrubber:
    """Replaces every known secret (and any URL password) by *** in text meant for humans."""

    secrets: set[str] = field(default_factory=set)

    def add(self, secret: str | None) -> None:
        # A secret shorter than 4 characters would mask ordinary text everywhere; such a password
        # is still removed from URLs and `password=` forms by redact_url.
        if secret and len(secret) >= 4:
            self.secrets.add(secret)
            quoted = re.sub(r"([^A-Za-z0-9])", lambda m: f"%{ord(m.group(1)):02X}", secret)
            self.secrets.add(quoted)  # as it appears percent-encoded in a URL

    def add_url(self, url: str | None) -> None:
        for s in url_secrets(url):
            self.add(s)

    def __call__(self, text: str) -> str:
        out = redact_url(text)
        for s in sorted(self.secrets, key=len, reverse=True):
            out = out.replace(s, "***")
        return out

    def __repr__(self) -> str:
        return f"Scrubber({len(self.secrets)} secret(s))"


def url_secrets(url: str | None) -> list[str]:
    """Passwords written into a URL or a libpq keyword string (raw and decoded)."""
    if not url:
        return []
    found: list[str] = []
    if "://" in url:
        try:
            parts = urlsplit(url)
            if parts.password:
                found += [parts.password, unquote(parts.password)]
        except ValueError:
            pass
    for m in re.finditer(r"password\s*=\s*('([^']*)'|[^&\s]+)", url, flags=re.IGNORECASE):
        value = m.group(2) if m.group(2) is not None else m.group(1)
        found += [value, unquote(value)]
    return [f for f in found if f]


def resolve_credentials(
    *,
    password_file: Path | None,
    secret_arn: str | None,
    scrub: Scrubber,
    log: logging.Logger | None = None,
) -> Credentials:
    """The source credentials; each secret found is registered with `scrub` before any use."""
    if secret_arn:
        return _from_secrets_manager(secret_arn, scrub)
    if password_file is not None:
        try:
            text = Path(password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(
                f"cannot read source_password_file {password_file}: {exc.strerror}"
            ) from None
        if not text:
            raise SecretError(f"source_password_file {password_file} is empty")
        scrub.add(text)
        if log is not None:
            log.debug("source password from source_password_file %s", password_file)
        return Credentials(password=text, origin="password_file")
    return Credentials()


def _region_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 5 and parts[0] == "arn" and parts[3] else None


def _from_secrets_manager(arn: str, scrub: Scrubber) -> Credentials:
    try:
        import boto3  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        raise SecretError(
            "secret_arn is set but boto3 is not installed (pip install boto3), "
            "or use source_password_file / PGPASSFILE instead"
        ) from None
    try:
        client: Any = boto3.client("secretsmanager", region_name=_region_of(arn))
        answer = client.get_secret_value(SecretId=arn)
    except Exception as exc:  # botocore's errors: no credentials, not found, denied, network
        resp = getattr(exc, "response", None)
        code = resp.get("Error", {}).get("Code") if isinstance(resp, dict) else None
        kind = code or type(exc).__name__
        raise SecretError(f"cannot retrieve the source password from {arn}: {kind}") from None
    text = answer.get("SecretString")
    if not isinstance(text, str) or not text:
        raise SecretError(f"secret {arn} holds no SecretString (a binary secret is not supported)")
    user: str | None = None
    password = text
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            raise SecretError(f"secret {arn} looks like JSON but does not parse") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("password"), str):
            raise SecretError(f"secret {arn} is a JSON document without a 'password' string")
        password = doc["password"]
        user = doc.get("username") if isinstance(doc.get("username"), str) else None
    scrub.add(password)
    scrub.add(text)
    return Credentials(password=password, user=user, origin="secret_arn")
