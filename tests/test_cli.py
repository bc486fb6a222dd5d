"""``towerkit.cli.main``: usage errors (unknown option, missing or mistyped argument, unknown
command) end as one line on stderr and exit 2, like a TowerkitError, never as a traceback."""

from __future__ import annotations

import pytest

from towerkit.cli import main


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["rec", "train", "--bogus-option"], "No such option: --bogus-option"),
        (["forecast", "predict", "some-model"], "expected --repo owner/name (repeatable) or --all"),
        (["rec", "seq", "evaluate", "m", "--negatives", "abc"], "Invalid value for '--negatives'"),
        (["nosuch"], "No such command 'nosuch'"),
        (["registry", "rollback", "m", "extra"], "unexpected extra argument(s) (extra)"),
    ],
)
def test_usage_errors_are_one_line(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert expected in err
    assert "Traceback" not in err


def test_no_arguments_shows_the_help_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "error" not in capsys.readouterr().err  # the help (printed by rich) is enough
