"""Every float option of the CLI, found by walking its commands: `inf`, `-inf` and `nan` are usage errors
(exit 2, one line naming the option), refused before any work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from indexer.cli import app
from indexer.settings import get_settings
from tests.nonfinite import NON_FINITE


def _float_options() -> list[tuple[str, Any, Any]]:
    """(command name, command, option) for each option the CLI parses as a float (typer's own click)."""
    group: Any = typer.main.get_command(app)
    return [(name, command, param) for name, command in group.commands.items() for param in command.params
            if param.param_type_name == "option" and param.type_descriptor.annotation is float]


FLOAT_OPTIONS = _float_options()


def test_the_walk_finds_the_float_options() -> None:
    found = {(name, param.opts[0]) for name, _, param in FLOAT_OPTIONS}
    assert {("advise", "--target-recall"), ("advise", "--budget-minutes"), ("compare", "--min-recall-drop"),
            ("worker", "--poll-seconds")} <= found


@pytest.mark.parametrize("value", NON_FINITE, ids=["inf", "-inf", "nan"])
@pytest.mark.parametrize("name, command, option", FLOAT_OPTIONS,
                         ids=[f"{name} {param.opts[0]}" for name, _, param in FLOAT_OPTIONS])
def test_a_non_finite_float_option_is_one_line_exit_2(name: str, command: Any, option: Any, value: float,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INDEXER_DATA_DIR", str(tmp_path / "data"))  # nothing lands in the working directory
    get_settings.cache_clear()
    required = []  # placeholders for what the command needs besides the option (never read: refused first)
    for param in command.params:
        if param.required:
            required += [str(tmp_path / "x")] if param.param_type_name == "argument" else [param.opts[0], "x"]
    once = ["--once"] if name == "worker" else []  # without the check, a worker would return at once
    result = CliRunner().invoke(app, [name, *required, *once, option.opts[0], str(value)])
    get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: Invalid value for '{option.opts[0]}'"), lines
