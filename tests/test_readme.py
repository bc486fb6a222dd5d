"""README.md's command lines name real commands and options: a renamed flag or verb fails here
instead of in a newcomer's terminal. (Only names are checked; nothing is run.)"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from typing import Any

import pytest
import typer

from towerkit.cli import app
from towerkit.core.paths import repo_root

_BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def readme_commands() -> Iterator[str]:
    """Every ``towerkit ...`` command in the README's bash blocks, continuation lines joined,
    comments and ``[optional]`` brackets dropped; a line of several commands gives each."""
    text = (repo_root() / "README.md").read_text(encoding="utf-8")
    for block in _BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|\|", line):
                words = shlex.split(part, comments=True)
                while words and (words[0].endswith("towerkit") or "=" in words[0]):
                    if words[0].endswith("towerkit"):  # (after VAR=value prefixes)
                        yield " ".join(w.strip("[]") for w in words[1:])
                        break
                    words = words[1:]


def resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The click command the words name, and the words after its name."""
    command: Any = typer.main.get_command(app)
    while words and hasattr(command, "commands") and words[0] in command.commands:
        command, words = command.commands[words[0]], words[1:]
    return command, words


COMMANDS = sorted(set(readme_commands()))


def test_the_readme_shows_commands_of_every_domain() -> None:
    domains = {line.split()[0] for line in COMMANDS if line}
    assert {"zoo", "rec", "forecast", "repotune", "registry", "data"} <= domains


@pytest.mark.parametrize("line", COMMANDS)
def test_readme_command_names_a_command_and_its_options(line: str) -> None:
    command, rest = resolve(line.split())
    assert not hasattr(command, "commands") or "--help" in rest, f"{line!r}: not a command"
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for word in rest:
        if word.startswith("-") and word not in ("-", "--help"):  # click adds --help itself
            flag = word.split("=", 1)[0]
            assert flag in options, f"{line!r}: {flag} is not an option of {command.name}"


def test_readme_config_files_exist() -> None:
    named = {w for line in COMMANDS for w in line.split() if w.startswith("configs/")}
    assert named, "the README names no recipe file"
    missing = sorted(path for path in named if not (repo_root() / path).is_file())
    assert not missing, f"README names config files that do not exist: {missing}"
