"""The extractor's own typed settings: `SHUKEI_*` environment variables, then defaults.

Command-line options override them (None means "not given"). They are kept apart from
`shukei.settings` on purpose; `./shukei.toml` is not read for these keys (the main settings forbid
unknown keys there), so set them in the environment or on the command line. Their types and
bounds are `shukei.settings_models.ExtractSettings`.
"""

from __future__ import annotations

from typing import Any

from shukei.settings import load_typed
from shukei.settings_models import ExtractSettings

__all__ = ["ExtractSettings", "load_extract_settings"]


def load_extract_settings(**overrides: Any) -> ExtractSettings:
    """Settings from the environment; `overrides` (None = not given) win."""
    settings: ExtractSettings = load_typed(ExtractSettings, overrides)
    return settings
