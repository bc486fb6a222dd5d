"""The analyser on real code: click (Python), npm (JavaScript), git's Go contrib; TS/Java fixtures."""

from __future__ import annotations

import inspect
import subprocess
from pathlib import Path

import click
import pytest

from towerkit.core.errors import TowerkitError
from towerkit.repotune.analyze import analyze_repository, load_analysis

CLICK = Path(click.__file__).parent
NPM_LIB = Path("/usr/lib/node_modules/npm/lib")
GO_DIR = Path("/usr/share/doc/git/contrib/persistent-https")

TS_SOURCE = """import { Store } from './store';

/** Adds two numbers. */
export function add(a: number, b: number = 2): number {
  return a > 0 && b > 0 ? a + b : 0;
}

export class Cache<T> extends Store implements Sized {
  /** Look a key up. */
  get(key: string, fallback?: T): T | undefined {
    if (this.has(key)) { return this.read(key); }
    return fallback;
  }
}
"""

JAVA_SOURCE = """package demo;

import java.util.List;

/** A bank account. */
public class Account extends Base implements Comparable<Account> {
    private long cents;

    /** Deposit money; negative amounts are refused. */
    @Override
    public long deposit(long amount, String note) {
        if (amount < 0 || note == null) { throw new IllegalArgumentException("amount"); }
        cents += amount;
        return audit.record(cents);
    }
}
"""


def _by_id(data: dict) -> dict:
    return {e["id"]: e for e in data["elements"]}


@pytest.fixture(scope="module")
def click_analysis(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return analyze_repository(CLICK, tmp_path_factory.mktemp("click"), workers=2, progress=False)


def test_python_elements_match_inspect(click_analysis: dict) -> None:
    elements = _by_id(click_analysis)
    echo = elements["utils.py::echo"]
    lines, start = inspect.getsourcelines(click.utils.echo)
    assert (echo["start_line"], echo["end_line"]) == (start, start + len(lines) - 1)
    assert [p["name"] for p in echo["params"]] == list(inspect.signature(click.echo).parameters)
    assert echo["module"] == "click.utils" and echo["kind"] == "function"
    invoke = elements["core.py::Command.invoke"]
    assert invoke["kind"] == "method" and invoke["parent"] == "Command"
    group = elements["core.py::Group"]
    assert group["bases"] == [b.__name__ for b in click.Group.__bases__] == ["Command"]
    assert echo["docstring"].startswith(inspect.getdoc(click.echo).split("\n")[0])
    assert echo["complexity"] > 3 and "echo" in echo["keywords"]


def test_python_project_graph_and_patterns(click_analysis: dict) -> None:
    project = click_analysis["project"]
    assert project["name"] == "click" and "command line" in project["description"]
    assert "click.core" in project["key_modules"]
    froms = {(i["from"], i["to"]) for i in click_analysis["module_interactions"]}
    assert ("click.core", "click.types") in froms
    callees = click_analysis["call_graph"]["core.py::Command.main"]
    assert "core.py::Command.make_context" in callees
    kinds = {p["type"] for p in click_analysis["patterns"]}
    assert kinds == {"class_implementation", "function_with_callers", "module_interaction"}
    assert click_analysis["stats"]["elements"] == len(click_analysis["elements"]) > 400


def test_typescript_and_java_fixtures(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "cache.ts").write_text(TS_SOURCE)
    (repo / "Account.java").write_text(JAVA_SOURCE)
    (repo / "package.json").write_text('{"dependencies": {"lodash": "^4"}}')
    data = analyze_repository(repo, tmp_path / "out", workers=1, progress=False)
    elements = _by_id(data)
    add = elements["cache.ts::add"]
    assert [(p["name"], p["annotation"], p["default"]) for p in add["params"]] == [
        ("a", "number", None),
        ("b", "number", "2"),
    ]
    assert add["returns"] == "number" and add["docstring"] == "Adds two numbers."
    assert add["complexity"] == 3 and (add["start_line"], add["end_line"]) == (4, 6)
    get = elements["cache.ts::Cache.get"]
    assert get["kind"] == "method" and get["returns"] == "T | undefined"
    assert {"this.has", "this.read"} <= set(get["calls"])
    assert elements["cache.ts::Cache"]["bases"][:1] == ["Store"]
    deposit = elements["Account.java::Account.deposit"]
    assert [(p["name"], p["annotation"]) for p in deposit["params"]] == [
        ("amount", "long"),
        ("note", "String"),
    ]
    assert deposit["returns"] == "long" and deposit["decorators"] == ["Override"]
    assert deposit["complexity"] == 3 and "audit.record" in deposit["calls"]
    assert deposit["docstring"].startswith("Deposit money")
    assert (
        "java.util.List" in next(f for f in data["files"] if f["path"] == "Account.java")["imports"]
    )
    assert "lodash" in data["project"]["technologies"]


@pytest.mark.skipif(not GO_DIR.is_dir(), reason="git's contrib Go sources are not installed")
def test_go_real_sources(tmp_path: Path) -> None:
    data = analyze_repository(GO_DIR, tmp_path, workers=1, progress=False)
    elements = _by_id(data)
    run = next(e for e in elements.values() if e["kind"] == "method" and e["parent"] == "Proxy")
    source = (GO_DIR / run["file"]).read_text().splitlines()
    assert source[run["start_line"] - 1].startswith("func (")
    assert source[run["end_line"] - 1] == "}"
    assert data["project"]["languages"] == {"go": 4} and not data["skipped"]


@pytest.mark.skipif(not NPM_LIB.is_dir(), reason="npm's JavaScript sources are not installed")
def test_javascript_real_sources(tmp_path: Path) -> None:
    data = analyze_repository(NPM_LIB, tmp_path, workers=2, progress=False)
    assert data["stats"]["elements"] > 300 and data["project"]["languages"]["javascript"] > 50
    for element in list(data["elements"])[:50]:
        lines = (NPM_LIB / element["file"]).read_text().splitlines()
        assert element["name"].lstrip("#") in lines[element["start_line"] - 1] or element[
            "name"
        ] in ("constructor",)
    assert any(i["to"] == "base-cmd" for i in data["module_interactions"])


def test_incremental_and_unparseable(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for i in range(3):
        (repo / f"m{i}.py").write_text(f"def f{i}(x: int) -> int:\n    return x + {i}\n")
    (repo / "broken.py").write_text("def oops(:\n")
    out = tmp_path / "out"
    first = analyze_repository(repo, out, workers=1, progress=False)
    assert first["stats"]["files_parsed"] == 4
    assert first["skipped"][0]["path"] == "broken.py"
    assert "SyntaxError line 1" in first["skipped"][0]["reason"]
    (repo / "m1.py").write_text("def g(y):\n    return y\n")
    second = analyze_repository(repo, out, workers=1, progress=False)
    assert (second["stats"]["files_parsed"], second["stats"]["files_reused"]) == (1, 3)
    assert {e["id"] for e in second["elements"]} == {"m0.py::f0", "m1.py::g", "m2.py::f2"}
    assert load_analysis(out)["elements"] == second["elements"]


def test_corrupt_analysis_file_is_one_line_and_analyze_rewrites_it(tmp_path: Path) -> None:
    repo, out = tmp_path / "repo", tmp_path / "out"
    repo.mkdir()
    (repo / "m.py").write_text("def f(x: int) -> int:\n    return x\n")
    out.mkdir()
    (out / "repository_analysis.json").write_text("{truncated")
    with pytest.raises(TowerkitError, match=r"repository_analysis\.json: not valid JSON"):
        load_analysis(out)
    data = analyze_repository(repo, out, workers=1, progress=False)  # not reused, parsed again
    assert data["stats"]["files_parsed"] == 1
    assert [e["id"] for e in load_analysis(out)["elements"]] == ["m.py::f"]


def test_git_url_and_bad_path(tmp_path: Path) -> None:
    repo = tmp_path / "gitrepo"
    repo.mkdir()
    (repo / "tool.py").write_text("def run(n: int = 1) -> None:\n    pass\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    data = analyze_repository(f"file://{repo}", tmp_path / "out", progress=False)
    assert [e["id"] for e in data["elements"]] == ["tool.py::run"]
    with pytest.raises(TowerkitError, match="not a folder and not a git URL"):
        analyze_repository(tmp_path / "nope", tmp_path / "out2", progress=False)
