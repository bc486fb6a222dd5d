"""benchmarks/two_tower_serving_keepalive.py: its arguments."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def keepalive(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("two_tower_serving_keepalive.py")


def test_keep_alive_values_are_parsed_and_bad_ones_refused(
    keepalive: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    args = keepalive.parse_args(["--keep-alive", "1,5,75", "--runs", "2"])
    assert args.keep_alive == [1, 5, 75] and args.runs == 2 and args.concurrency == 32
    for argv, message in [
        (["--keep-alive", "5,long"], "expected whole seconds like 5,75, got '5,long'"),
        (["--runs", "0"], "expected positive values"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            keepalive.parse_args(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
