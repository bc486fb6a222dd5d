"""Generated QA data: JSONL schema, grounding, element-level split without leakage, filters."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest

from towerkit.core.errors import TowerkitError
from towerkit.repotune.analyze import analyze_repository
from towerkit.repotune.config import GenerateConfig
from towerkit.repotune.generate import SETS, deduplicate, generate_dataset, read_jsonl
from towerkit.repotune.templates import PHRASINGS

CLICK = Path(click.__file__).parent


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("gen")
    analyze_repository(CLICK, root, workers=2, progress=False)
    meta = generate_dataset(root, root / "data", GenerateConfig(max_elements=200))
    return root, meta


def _load(root: Path) -> dict[str, list[dict]]:
    return {name: read_jsonl(root / "data" / f"{name}.jsonl") for name in SETS}


def test_jsonl_schema_and_metadata(dataset: tuple[Path, dict]) -> None:
    root, meta = dataset
    sets = _load(root)
    assert meta["counts"] == {name: len(rows) for name, rows in sets.items()}
    assert all(meta["counts"][name] > 0 for name in SETS)
    for row in sets["train"] + sets["test"]:
        assert set(row) == {"messages", "metadata"}
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        assert all(isinstance(m["content"], str) and m["content"] for m in row["messages"])
        md = row["metadata"]
        assert md["task_type"] in PHRASINGS and md["difficulty"] in ("easy", "medium", "hard")
    on_disk = json.loads((root / "data" / "metadata.json").read_text())
    assert on_disk["config"]["max_elements"] == 200 and on_disk["counts"] == meta["counts"]
    assert set(meta["by_task"]["train"]) == set(PHRASINGS)


def test_answers_are_grounded_in_the_source(dataset: tuple[Path, dict]) -> None:
    root, _ = dataset
    for row in _load(root)["train"][:300]:
        md, answer = row["metadata"], row["messages"][-1]["content"]
        if md["file"] is None:
            continue
        assert f"`{md['file']}`" in answer and f"{md['start_line']}-{md['end_line']}" in answer
        lines = (CLICK / md["file"]).read_text().splitlines()
        defined = "\n".join(lines[md["start_line"] - 1 : md["end_line"]])
        assert re.search(rf"(def|class)\s+{re.escape(md['symbol'].split('.')[-1])}\b", defined)


def test_split_by_element_without_leakage(dataset: tuple[Path, dict]) -> None:
    root, meta = dataset
    sets = _load(root)
    owner = {}
    for split in ("train", "val", "test"):
        for element in meta["elements"][split]:
            assert element not in owner, f"{element} in {owner.get(element)} and {split}"
            owner[element] = split
    n = len(owner)
    assert abs(len(meta["elements"]["train"]) - 0.8 * n) <= 1
    for name, rows in sets.items():
        expected = "train" if name == "heldout_phrasings" else name
        for row in rows:
            cited = row["metadata"]["cites"]
            assert all(owner[c] == expected for c in cited), (name, row["metadata"])
    # the text of every training sample is free of the held-out elements' locations
    train_text = "\n".join(r["messages"][-1]["content"] for r in sets["train"])
    for row in sets["test"]:
        md = row["metadata"]
        if md["file"] is not None:
            assert f"`{md['symbol']}` (`{md['file']}`, lines {md['start_line']}-" not in train_text
            assert f"`{md['symbol']}` is a" not in train_text


def test_heldout_phrasings_are_unseen(dataset: tuple[Path, dict]) -> None:
    root, meta = dataset
    sets = _load(root)
    train_questions = {r["messages"][1]["content"] for r in sets["train"]}
    for row in sets["heldout_phrasings"]:
        md = row["metadata"]
        assert md["phrasing"] == len(PHRASINGS[md["task_type"]]) - 1
        assert row["messages"][1]["content"] not in train_questions
        assert md["element"] in meta["elements"]["train"] or md["element"] == "__project__"


def test_deduplicate_and_bad_config(tmp_path: Path) -> None:
    def row(answer: str) -> dict:
        return {
            "messages": [{"content": "s"}, {"content": "q"}, {"content": answer}],
            "metadata": {},
        }

    base = "the quick brown fox jumps over the lazy dog near the river bank today " * 3
    rows = [row(base), row(base + "!"), row("an entirely different answer about parsers and files")]
    assert deduplicate(rows, 0.8) == [rows[0], rows[2]]  # the first of the near-twins stays
    assert deduplicate([rows[2], rows[0], rows[2]], 0.8) == [rows[2], rows[0]]
    with pytest.raises(TowerkitError, match="three fractions"):
        generate_dataset(tmp_path, tmp_path / "d", GenerateConfig(split=[0.5, 0.5]))
