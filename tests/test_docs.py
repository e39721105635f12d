"""The README documents every command of the CLI and the two set-up commands."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from shukei.cli import cli

README = Path(__file__).resolve().parent.parent / "README.md"


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command of the click tree, recursively, as name tuples (groups included)."""
    out: list[tuple[str, ...]] = []
    for name, cmd in sorted(group.commands.items()):
        path = (*prefix, name)
        out.append(path)
        if isinstance(cmd, click.Group):
            out += command_paths(cmd, path)
    return out


@pytest.fixture(scope="module")
def readme() -> str:
    assert README.is_file(), f"{README} is missing"
    return README.read_text(encoding="utf-8")


def test_the_cli_has_commands() -> None:
    paths = command_paths(cli)
    # The walk is recursive: sub-commands of groups are found too.
    assert ("generate", "sales") in paths
    assert {("ingest",), ("run",), ("status",), ("diff",)} <= set(paths)


@pytest.mark.parametrize("path", command_paths(cli), ids=" ".join)
def test_every_command_is_in_the_readme(readme: str, path: tuple[str, ...]) -> None:
    usage = "shukei " + " ".join(path)
    assert usage in readme, f"README.md never shows `{usage}`"


@pytest.mark.parametrize("target", ["make demo", "make test"])
def test_readme_mentions_make_targets(readme: str, target: str) -> None:
    assert target in readme, f"README.md does not mention `{target}`"


def test_make_targets_exist() -> None:
    makefile = (README.parent / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test"):
        assert f"\n{target}:" in makefile, f"Makefile has no `{target}` target"
