"""Start-up of the command line: a command loads only its own modules, and a run can report its phases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from sync_platform.cli.main import COMMANDS, cli

SYNC_PLATFORM = str(Path(sys.executable).parent / "sync-platform")


def test_a_light_command_does_not_import_dagster_or_the_engine(tmp_path: Path) -> None:
    timings = tmp_path / "timings.json"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from sync_platform.cli.main import main; sys.argv = ['sync-platform', 'version']\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
            "heavy = [m for m in ('dagster', 'pyarrow', 'connectorx', 'sync_platform.engine.sync')"
            " if m in sys.modules]\n"
            "print('HEAVY', heavy, code)",
        ],
        env={**os.environ, "SYNC_PLATFORM_TIMINGS": str(timings)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert "HEAVY [] 0" in done.stdout, done.stdout + done.stderr
    marks = json.loads(timings.read_text())
    assert set(marks) >= {"main", "exit"} and marks["exit"] >= marks["main"]


def test_every_command_is_listed_and_loads_on_use() -> None:
    listed = CliRunner().invoke(cli, ["--help"])
    assert listed.exit_code == 0, listed.output
    for name in COMMANDS:
        assert f"  {name} " in listed.output
    assert "nope" not in cli.commands
    for name, command in cli.commands.items():
        assert isinstance(command, click.Command) and command.name == name
    unknown = CliRunner().invoke(cli, ["nope"])
    assert unknown.exit_code != 0 and "No such command 'nope'" in unknown.output


def test_the_installed_command_exits_with_the_command_s_code(tmp_path: Path) -> None:
    missing = subprocess.run(
        [SYNC_PLATFORM, "--config-dir", str(tmp_path / "absent"), "sync", "-t", "shop.orders"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1, missing.stderr  # configuration error, after the lazily loaded command ran
    assert "absent" in missing.stderr
