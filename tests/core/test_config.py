from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Union

import pytest
import yaml

from towerkit.core.config import (
    _type_name,
    check_value,
    config_hash,
    load_config,
    parse_override,
    save_config,
    to_dict,
)
from towerkit.core.errors import ConfigError


@dataclass
class Optim:
    lr: float = 1e-3
    kind: Literal["adamw", "sgd"] = "adamw"
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class Recipe:
    name: str
    epochs: int = 1
    optim: Optim = field(default_factory=Optim)
    max_steps: int | None = None
    data_dir: Path = Path("data")
    tags: dict[str, str] = field(default_factory=dict)
    flag: bool = False


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_yaml_and_overrides_build_typed_config(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "quick", "optim": {"lr": 1}})
    cfg = load_config(Recipe, path, ["optim.kind=sgd", "epochs=3", "max_steps=10", "flag=true"])
    assert cfg == Recipe(
        name="quick", epochs=3, optim=Optim(lr=1.0, kind="sgd"), max_steps=10, flag=True
    )
    assert isinstance(cfg.optim.lr, float)
    assert isinstance(cfg.data_dir, Path)


def test_override_parses_lists_and_null(tmp_path: Path) -> None:
    cfg = load_config(
        Recipe,
        write(tmp_path, {"name": "x", "max_steps": 5}),
        ["optim.betas=[0.8, 0.9]", "max_steps=null"],
    )
    assert cfg.optim.betas == [0.8, 0.9]
    assert cfg.max_steps is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.lrr=1"], "override 'optim.lrr=1': unknown key 'optim.lrr'"),
        (["epochs=three"], "key 'epochs': expected int, got 'three' (str)"),
        (["optim.kind=adam"], "key 'optim.kind': expected one of ['adamw', 'sgd']"),
        (["flag=1"], "key 'flag': expected bool"),
        (["epochs"], "override 'epochs': expected key.sub=value"),
        (["optim.betas.2=1"], "key 'optim.betas.2': expected a list index 0..1, got '2'"),
        (["optim.betas.x=1"], "key 'optim.betas.x': expected a list index 0..1, got 'x'"),
        (["optim.lr.0=1"], "key 'optim.lr': expected float, got {'0': 1} (dict)"),
    ],
)
def test_bad_overrides_name_the_key(tmp_path: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(Recipe, write(tmp_path, {"name": "x"}), overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@dataclass
class Staged:
    stages: list[Optim] = field(default_factory=lambda: [Optim(), Optim(kind="sgd")])


def test_numeric_override_keys_index_lists_of_the_file_and_of_the_defaults(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, {"stages": [{"lr": 0.1}, {"lr": 0.2}, {"lr": 0.3}]})
    cfg = load_config(Staged, path, ["stages.2.kind=sgd", "stages.0.betas.1=0.5"])
    assert cfg.stages == [Optim(lr=0.1, betas=[0.9, 0.5]), Optim(lr=0.2), Optim(0.3, "sgd")]
    # the file leaves the stages to their default: the index reaches the default's list
    cfg = load_config(Staged, None, ["stages.1.lr=0.01"])
    assert cfg.stages == [Optim(), Optim(lr=0.01, kind="sgd")]
    assert Staged().stages == [Optim(), Optim(kind="sgd")]  # the default itself is untouched


@dataclass
class Choices:
    layers: int | None = None
    cell: Literal["lstm", "transformer"] | None = None
    width: Union[int, str] = 1  # noqa: UP007  (typing.Union prints as "Union" too)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("layers=deep", "key 'layers': expected int or None, got 'deep' (str)"),
        ("cell=gru", "key 'cell': expected 'lstm', 'transformer' or None, got 'gru' (str)"),
        ("width=[1]", "key 'width': expected int or str, got [1] (list)"),
    ],
)
def test_union_type_errors_list_the_choices(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(Choices, None, [override])
    assert str(err.value) == f"override {override!r}: {message}"
    assert "Union" not in str(err.value) and "Optional" not in str(err.value)


@pytest.mark.parametrize(
    ("tp", "name"),
    [
        (int | None, "int or None"),
        (Optional[float], "float or None"),  # noqa: UP045
        (Union[int, str, None], "int, str or None"),  # noqa: UP007
        (Literal["lstm", "transformer"], "one of 'lstm', 'transformer'"),
        (Literal["auto"] | int, "'auto' or int"),
        (list[int] | None, "list or None"),
        (type(None), "None"),
        (Path, "Path"),
    ],
)
def test_type_names_in_messages(tp: object, name: str) -> None:
    assert _type_name(tp) == name


def test_check_value_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"^here: key 'model.k': expected int or None, got 1.5"):
        check_value(1.5, int | None, "model.k", "here")
    assert check_value(None, int | None, "model.k", "here") is None


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .*missing.yaml: not found"):
        load_config(Recipe, tmp_path / "missing.yaml")
    bad = write(tmp_path, {"name": "x", "epochs": 1.5})
    with pytest.raises(ConfigError, match=r"recipe.yaml: key 'epochs': expected int, got 1.5"):
        load_config(Recipe, bad)
    with pytest.raises(ConfigError, match=r"recipe.yaml: missing required key 'name'"):
        load_config(Recipe, write(tmp_path, {"epochs": 2}))
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: line \d+ is not valid YAML"):
        load_config(Recipe, broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(Recipe, listy)


def test_save_round_trip_and_hash(tmp_path: Path) -> None:
    cfg = load_config(Recipe, write(tmp_path, {"name": "x", "tags": {"a": "b"}}), ["epochs=4"])
    out = tmp_path / "run" / "config.yaml"
    save_config(cfg, out)
    again = load_config(Recipe, out)
    assert again == cfg
    assert config_hash(again) == config_hash(cfg)
    assert config_hash(load_config(Recipe, out, ["epochs=5"])) != config_hash(cfg)
    assert to_dict(cfg)["data_dir"] == "data"
    assert not list(out.parent.glob("*.tmp"))


def test_parse_override_types() -> None:
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=0.5") == (["a"], 0.5)
    assert parse_override("a=hello world") == (["a"], "hello world")
    assert parse_override("a=") == (["a"], "")
