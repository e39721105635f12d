"""shukei (集計): re-runnable, late-data-aware daily marts from dirty business data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Project", "__version__"]

if TYPE_CHECKING:
    from shukei.project import Project


def __getattr__(name: str) -> Any:
    # Lazy, so `import shukei` (and the CLI) stays instant.
    if name == "Project":
        from shukei.project import Project

        return Project
    raise AttributeError(name)
