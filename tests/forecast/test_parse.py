"""Parser quirks of OpenDigger files: left-out zero months, 2021-10-raw, yearly/quarterly keys,
duration files, list files, malformed files reported by path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from towerkit.forecast.parse import (
    MalformedMetric,
    dense_months,
    month_index,
    month_label,
    parse_metric,
    read_metric,
)


def test_month_index_round_trip() -> None:
    assert month_index("2021-10") == 2021 * 12 + 9
    assert month_label(month_index("2015-01")) == "2015-01"
    with pytest.raises(ValueError):
        month_index("2021-13")


def test_left_out_months_are_zero_between_first_and_last() -> None:
    parsed = parse_metric({"2020-01": 3, "2020-04": 5.5}, "stars")
    first, values = dense_months(parsed.monthly["stars"])
    assert month_label(first) == "2020-01"
    np.testing.assert_array_equal(values, [3, 0, 0, 5.5])


def test_raw_value_replaces_the_interpolated_month() -> None:
    parsed = parse_metric(
        {"2021-09": 10, "2021-10": 11.5, "2021-10-raw": 40, "2021-11": 12}, "activity"
    )
    assert parsed.monthly["activity"][month_index("2021-10")] == 40.0
    assert parsed.monthly["activity"][month_index("2021-09")] == 10.0


def test_yearly_and_quarterly_keys_are_kept_apart() -> None:
    parsed = parse_metric({"2021": 100, "2021Q3": 30, "2021-07": 9}, "openrank")
    assert parsed.yearly == {2021: 100.0}
    assert parsed.quarterly == {(2021, 3): 30.0}
    assert parsed.monthly["openrank"] == {month_index("2021-07"): 9.0}


def test_duration_file() -> None:
    data = {
        "avg": {"2022-08": 6, "2022-09": 15.46},
        "levels": {"2022-08": [24, 0, 1, 1]},
        **{f"quantile_{k}": {"2022-09": k} for k in range(5)},
    }
    parsed = parse_metric(data, "issue_response_time")
    assert parsed.kind == "duration"
    assert parsed.monthly["avg"][month_index("2022-09")] == 15.46
    assert parsed.monthly["quantile_4"] == {month_index("2022-09"): 4.0}
    assert parsed.levels[month_index("2022-08")] == [24.0, 0.0, 1.0, 1.0]


def test_list_file() -> None:
    parsed = parse_metric(
        {"2022-09": [["gmail.com", "44"], ["intel.com", 3]]}, "contributor_email_suffixes"
    )
    assert parsed.kind == "list"
    assert parsed.lists[month_index("2022-09")] == [("gmail.com", 44.0), ("intel.com", 3.0)]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([1, 2], "expected a JSON object"),
        ({"2021-01": "many"}, "key '2021-01': expected a number"),
        ({"January": 3}, "key 'January': expected YYYY-MM"),
        ({"2021-01": None}, "expected a number"),
        ({"avg": {"2021-01": 1}}, "key 'quantile_0'"),
        ({"2021-01": [["a.com"]]}, "expected [name, count] pairs"),
    ],
)
def test_malformed_content_names_the_file_and_key(data: object, fragment: str) -> None:
    with pytest.raises(MalformedMetric) as info:
        parse_metric(data, "stars", "x/y/stars.json")
    assert str(info.value).startswith("x/y/stars.json: ")
    assert fragment in str(info.value)


def test_invalid_json_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "stars.json"
    path.write_text('{"2021-01": 3,')
    with pytest.raises(MalformedMetric, match=r"stars\.json: not valid JSON"):
        read_metric(path)
    path.write_text(json.dumps({"2021-01": 3}))
    assert read_metric(path).monthly["stars"] == {month_index("2021-01"): 3.0}
