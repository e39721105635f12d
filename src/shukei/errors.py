"""One exception tree for everything a user can see.

Every error carries a message written for the user (what happened, where, what to do next); the CLI
catches `ShukeiError` once and prints it as a single `Error:` line.
"""

from __future__ import annotations


class ShukeiError(Exception):
    """Base of every error shukei raises on purpose."""

    exit_code = 1


class UsageError(ShukeiError):
    """The command was called wrongly (bad option, unknown pipeline...)."""

    exit_code = 2


class ConfigError(ShukeiError):
    """A setting or a pipeline definition is invalid."""

    exit_code = 2


class InputError(ShukeiError):
    """An input file cannot be used at all (unknown entity, missing column, unreadable)."""


class EngineError(ShukeiError):
    """The warehouse engine failed. `transient` says whether retrying may help."""

    transient = False


class TransientEngineError(EngineError):
    """A failure that may go away on retry (connection dropped, serialization failure)."""

    transient = True


class LockTimeout(ShukeiError):
    """Another shukei process holds the warehouse's writer lock."""


class CheckFailed(ShukeiError):
    """A blocking quality check found offending rows."""

    def __init__(self, check: str, failed: int, query: str, scope: str = "") -> None:
        self.check = check
        self.failed = failed
        self.query = query
        where = f" for {scope}" if scope else ""
        super().__init__(f"check {check!r} failed{where}: {failed} offending row(s)")


class RunFailed(ShukeiError):
    """A run finished with at least one failed date; the report says which and why."""


class GateBlocked(ShukeiError):
    """A gated batch's pass rate was below the threshold: nothing of it was loaded."""

    def __init__(self, summary: str, report: object = None) -> None:
        self.report = report
        super().__init__(summary + "; fix the rows and ingest the batch again")
