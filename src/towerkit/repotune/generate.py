"""``towerkit repotune generate``: repository_analysis.json -> grounded QA JSONL + metadata.json.

Elements are split 80/10/10 first; every sample belongs to one element's split and cites only
elements of that split, so no element's facts reach two splits. Training uses all but the last
phrasing of each task; the last phrasing, asked about training elements, is the held-out
``heldout_phrasings`` set (what the model memorised, asked differently).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

from datasketch import MinHash, MinHashLSH

from towerkit.core.errors import TowerkitError
from towerkit.core.io import atomic_path, write_json_atomic
from towerkit.repotune import templates as T
from towerkit.repotune.analyze import load_analysis
from towerkit.repotune.config import GenerateConfig
from towerkit.repotune.graph import callers_of
from towerkit.repotune.schema import CodeElement

SETS = ("train", "val", "test", "heldout_phrasings")
PROJECT_ID = "__project__"


def select_elements(data: dict[str, Any], config: GenerateConfig) -> list[CodeElement]:
    elements = [CodeElement.from_dict(e) for e in data["elements"]]
    keep = [
        e
        for e in elements
        if not (e.name.startswith("__") and e.name.endswith("__"))
        and (config.include_private or not any(p.startswith("_") for p in e.qualname.split(".")))
    ]
    if config.max_elements and len(keep) > config.max_elements:
        keep = sorted(
            random.Random(config.seed).sample(keep, config.max_elements), key=lambda e: e.id
        )
    return keep


def split_elements(ids: list[str], fractions: list[float], seed: int) -> dict[str, str]:
    """element id -> train | val | test, by a seeded hash order cut at the fractions."""
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise TowerkitError(f"generate.split={fractions}: expected three fractions summing to 1")
    order = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    n_train = round(fractions[0] * len(order))
    n_val = round(fractions[1] * len(order))
    names = ["train"] * n_train + ["val"] * n_val + ["test"] * (len(order) - n_train - n_val)
    return dict(zip(order, names, strict=True))


class _Builder:
    def __init__(
        self, data: dict[str, Any], elements: list[CodeElement], config: GenerateConfig
    ) -> None:
        self.data, self.config = data, config
        self.rng = random.Random(config.seed)
        self.by_id = {e.id: e for e in elements}
        self.split = split_elements(sorted(self.by_id), config.split, config.seed)
        self.graph = {k: [c for c in v if c in self.by_id] for k, v in data["call_graph"].items()}
        self.callers = callers_of(self.graph)
        self.methods: dict[tuple[str, str], list[CodeElement]] = defaultdict(list)
        for e in elements:
            if e.kind == "method" and e.parent:
                self.methods[(e.file, e.parent)].append(e)
        self.system = config.system_prompt.format(project=data["project"]["name"])

    def same_split(self, ids: list[str], split: str) -> list[CodeElement]:
        return [self.by_id[i] for i in ids if self.split.get(i) == split]

    def answers(self, e: CodeElement, split: str) -> dict[str, tuple[str, list[CodeElement]]]:
        callees = self.same_split(self.graph.get(e.id, []), split)
        callers = self.same_split(self.callers.get(e.id, []), split)
        out = {
            "code_location": (T.location(e) + f" (module `{e.module}`).", []),
            "code_explanation": (T.explanation(e, callees), callees),
        }
        if e.kind in ("function", "method"):
            out["api_usage"] = (T.api_usage(e), [])
            if callers or callees:
                out["implementation_path"] = (
                    T.implementation_path(e, callers, callees),
                    callers + callees,
                )
        else:
            methods = [
                m for m in self.methods.get((e.file, e.qualname), []) if self.split[m.id] == split
            ]
            out["architecture"] = (T.architecture(e, methods, callers), methods + callers)
            topic = e.keywords[0] if e.keywords else e.name.lower()
            out["design_proposal"] = (T.design_proposal(e, methods, topic), methods)
        return {k: v for k, v in out.items() if k in self.config.tasks}

    def sample(
        self,
        e: CodeElement | None,
        task: str,
        index: int,
        answer: str,
        cites: list[CodeElement],
        split: str,
    ) -> dict[str, Any]:
        q = self.data["project"]["name"] if e is None else e.qualname
        kind, topic = (e.kind, (e.keywords or [e.name.lower()])[0]) if e else ("project", "")
        question = T.PHRASINGS[task][index].format(q=q, kind=kind, topic=topic)
        meta = {
            "task_type": task,
            "difficulty": T.DIFFICULTY[task]
            if task != "code_explanation" or e is None or e.complexity < 8
            else "hard",
            "phrasing": index,
            "split": split,
            "element": e.id if e else PROJECT_ID,
            "symbol": e.qualname if e else None,
            "file": e.file if e else None,
            "start_line": e.start_line if e else None,
            "end_line": e.end_line if e else None,
            "params": [p.name for p in e.params] if e else [],
            "cites": sorted({c.id for c in cites} | ({e.id} if e else set())),
        }
        messages = [
            {"role": "system", "content": self.system},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
        return {"messages": messages, "metadata": meta}

    def phrasings(self, task: str, split: str) -> list[tuple[str, int]]:
        pool = list(range(len(T.PHRASINGS[task]) - 1))
        if split == "train":
            picks = self.rng.sample(pool, min(self.config.train_phrasings, len(pool)))
            return [("train", i) for i in picks] + [("heldout_phrasings", len(pool))]
        return [(split, self.rng.choice(pool))]

    def build(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {s: [] for s in SETS}
        for element_id in sorted(self.by_id):
            e, split = self.by_id[element_id], self.split[element_id]
            for task, (answer, cites) in self.answers(e, split).items():
                for target, index in self.phrasings(task, split):
                    out[target].append(self.sample(e, task, index, answer, cites, split))
        if "project_overview" in self.config.tasks:
            main = [self.by_id[i] for i in sorted(self.by_id) if self.split[i] == "train"]
            main = sorted(main, key=lambda e: -len(self.callers.get(e.id, [])))[:3]
            answer = T.project_overview(self.data["project"], main)
            for target, index in self.phrasings("project_overview", "train"):
                out[target].append(
                    self.sample(None, "project_overview", index, answer, main, "train")
                )
        return out


def grounded(sample: dict[str, Any], file_lines: dict[str, int]) -> bool:
    """The answer cites its element's file and line range, and the range lies inside the file."""
    meta, answer = sample["metadata"], sample["messages"][-1]["content"]
    if meta["file"] is None:
        return True
    inside = 1 <= meta["start_line"] <= meta["end_line"] <= file_lines.get(meta["file"], 0)
    return (
        inside
        and f"`{meta['file']}`" in answer
        and f"{meta['start_line']}-{meta['end_line']}" in answer
    )


def _minhash(text: str) -> MinHash:
    words = text.lower().split()
    shingles = {" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))}
    mh = MinHash(num_perm=64, seed=1)
    mh.update_batch([s.encode("utf-8") for s in shingles])
    return mh


def deduplicate(samples: list[dict[str, Any]], threshold: float) -> list[dict[str, Any]]:
    """Drop samples whose question+answer is a MinHash near duplicate of an earlier one."""
    lsh = MinHashLSH(threshold=threshold, num_perm=64)
    kept = []
    for i, sample in enumerate(samples):
        text = " ".join(m["content"] for m in sample["messages"][1:])
        mh = _minhash(text)
        if lsh.query(mh):
            continue
        lsh.insert(str(i), mh)
        kept.append(sample)
    return kept


def write_jsonl(path: Path, samples: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for sample in samples:
            fh.write(json.dumps(sample, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise TowerkitError(f"{path}: not found; run `towerkit repotune generate` first")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise TowerkitError(f"{path} line {n}: not valid JSON") from None
    return rows


def generate_dataset(analysis: Path, out_dir: Path, config: GenerateConfig) -> dict[str, Any]:
    """Write train/val/test/heldout_phrasings.jsonl and metadata.json into ``out_dir``."""
    started = time.perf_counter()
    split_elements([], config.split, config.seed)  # checks the fractions before any work
    data = load_analysis(analysis)
    unknown = [t for t in config.tasks if t not in T.PHRASINGS]
    if unknown:
        raise TowerkitError(
            f"generate.tasks: unknown task {unknown[0]!r}, expected one of {list(T.PHRASINGS)}"
        )
    elements = select_elements(data, config)
    if len(elements) < 10:
        raise TowerkitError(
            f"{analysis}: {len(elements)} usable elements, need at least 10 to split"
        )
    builder = _Builder(data, elements, config)
    raw = builder.build()
    file_lines = {f["path"]: f["lines"] for f in data["files"]}
    removed: dict[str, Counter[str]] = {s: Counter() for s in SETS}
    final: dict[str, list[dict[str, Any]]] = {}
    for name, samples in raw.items():
        good = []
        for s in samples:
            size = len(s["messages"][-1]["content"])
            if not config.min_answer_chars <= size <= config.max_answer_chars:
                removed[name]["length"] += 1
            elif not grounded(s, file_lines):
                removed[name]["ungrounded"] += 1
            else:
                good.append(s)
        final[name] = deduplicate(good, config.dedup_threshold)
        removed[name]["near_duplicate"] = len(good) - len(final[name])
    seconds = time.perf_counter() - started
    for name, samples in final.items():
        write_jsonl(out_dir / f"{name}.jsonl", samples)
    generated = sum(len(v) for v in raw.values())
    metadata = {
        "analysis": str(analysis),
        "project": data["project"]["name"],
        "config": asdict(config),
        "counts": {n: len(v) for n, v in final.items()},
        "by_task": {
            n: dict(Counter(s["metadata"]["task_type"] for s in v)) for n, v in final.items()
        },
        "by_difficulty": {
            n: dict(Counter(s["metadata"]["difficulty"] for s in v)) for n, v in final.items()
        },
        "removed": {n: dict(c) for n, c in removed.items()},
        "elements": {
            s: sorted(i for i, v in builder.split.items() if v == s)
            for s in ("train", "val", "test")
        },
        "generated": generated,
        "seconds": round(seconds, 3),
        "samples_per_minute": round(60 * generated / max(seconds, 1e-9), 1),
    }
    write_json_atomic(out_dir / "metadata.json", metadata)
    return metadata
