"""``towerkit forecast ...``: fetch, prepare, train, evaluate and predict.

A MODEL is a registry reference (``forecast-dualtower``, ``forecast-dualtower@production``,
``forecast-dualtower/2``) or a run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from towerkit.core.errors import TowerkitError

if TYPE_CHECKING:
    from towerkit.forecast.data import ForecastData
    from towerkit.forecast.evaluation import Backtest
    from towerkit.forecast.recipe import LoadedForecaster

app = typer.Typer(no_args_is_help=True, help=__doc__.split("\n\n")[0] if __doc__ else None)
console = Console(soft_wrap=True)


def _metrics_table(title: str, metrics: dict[str, float]) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(metrics):
        value = metrics[key]
        # counts (steps, windows, parameters) read better without four zero decimals
        text = f"{value:.0f}" if float(value).is_integer() and abs(value) >= 1 else f"{value:.4f}"
        table.add_row(key, text)
    return table


@app.command("fetch")
def fetch_command(
    repos: Path = typer.Option(..., "--repos", help="file of owner/name lines, or a corpus folder"),
    base_url: str = typer.Option(
        None, "--base-url", help="OpenDigger data service (or file://...)"
    ),
    layout: str = typer.Option(
        "current", help="current: <base>/github/...; legacy: <base>/open_digger/github/..."
    ),
    out: Path = typer.Option(
        None, "--out", help="cache folder (default TOWERKIT_HOME/forecast/opendigger)"
    ),
    concurrency: int = typer.Option(8, help="requests in flight at once"),
    retries: int = typer.Option(3, help="retries of a transient failure, with exponential backoff"),
    refresh: bool = typer.Option(False, help="fetch files already in the cache again"),
    about: bool = typer.Option(
        False,
        "--about",
        help="also each repository's description, topics and language from the GitHub API "
        "(about.json; read by the text tower; GITHUB_TOKEN raises the rate limit)",
    ),
    github_api: str = typer.Option(None, "--github-api", help="GitHub API base for --about"),
) -> None:
    """Fetch every repository's metric files into a cache; report what is missing."""
    import os

    from towerkit.core.paths import towerkit_home
    from towerkit.forecast.about import GITHUB_API
    from towerkit.forecast.client import (
        DEFAULT_BASE_URL,
        LEGACY_BASE_URL,
        ClientConfig,
        check_url,
        fetch_corpus,
        read_repo_list,
    )

    if layout not in ("current", "legacy"):
        raise TowerkitError(f"--layout: expected current or legacy, got {layout!r}")
    base = base_url or (LEGACY_BASE_URL if layout == "legacy" else DEFAULT_BASE_URL)
    config = ClientConfig(base, layout, retries=retries, concurrency=concurrency)  # type: ignore[arg-type]
    cache = out or towerkit_home() / "forecast" / "opendigger"
    if cache.exists() and not cache.is_dir():
        raise TowerkitError(f"--out {cache}: is a file; expected a cache folder")
    if not repos.exists():
        raise TowerkitError(
            f"--repos {repos}: not found (a file of owner/name lines or a corpus folder)"
        )
    names = read_repo_list(repos)
    if not names:
        raise TowerkitError(f"--repos {repos}: no owner/name lines (or repository folders) in it")
    if github_api is not None and not about:
        raise TowerkitError("--github-api: only with --about")
    api = check_url(github_api or GITHUB_API, "--github-api") if about else None
    token = os.environ.get("GITHUB_TOKEN") or None
    report = fetch_corpus(names, cache, config, about=api, token=token, refresh=refresh)
    console.print(f"cache: {cache}")
    console.print(report.summary())
    for url, reason in report.malformed[:10]:
        console.print(f"malformed: {url}: {reason}")
    for url, reason in report.failed[:10]:
        console.print(f"failed: {url}: {reason}")
    console.print(f"report: {cache / 'fetch_report.json'}")
    if report.failed:
        raise TowerkitError(
            f"fetch: {len(report.failed)} files failed after retries (see the report)", 1
        )


@app.command("prepare")
def prepare_command(
    overrides: list[str] = typer.Argument(
        None, help="key.sub=value overrides, e.g. data.corpus=DIR"
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="recipe YAML (default quick)"),
) -> None:
    """Read the corpus folder into the Parquet dataset (repositories x months x metrics)."""
    from towerkit.forecast.data import prepare_table
    from towerkit.forecast.recipe import load_recipe

    recipe = load_recipe(config, overrides or [])
    path, summary = prepare_table(recipe.data)
    console.print(summary)
    console.print(f"dataset: {path}")
    console.print(f"load report: {path.with_suffix('.report.json')}")


@app.command("train")
def train_command(
    overrides: list[str] = typer.Argument(None, help="key.sub=value overrides"),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="recipe YAML (default configs/forecast/quick.yaml)"
    ),
) -> None:
    """Train the dual tower (model.use_text=false: the no-text ablation); registers the run."""
    from towerkit.forecast.recipe import load_recipe, train

    result = train(load_recipe(config, overrides or []))
    console.print(f"data: {result.data.description}")
    console.print(f"run dir: {result.run_dir}")
    console.print(_metrics_table("forecast train (validation)", result.metrics))
    if result.version is not None:
        console.print(f"registered: {result.version.uri}")


@app.command("evaluate")
def evaluate_command(
    model: str = typer.Argument(..., help="registry reference or run directory"),
    also: list[str] = typer.Option(
        [], "--also", help="another model scored beside it (e.g. the no-text one)"
    ),
    overrides: list[str] = typer.Argument(
        None, help="eval.* overrides, e.g. eval.baselines=[Naive]"
    ),
    out: Path | None = typer.Option(None, "--out", help="folder (default <run>/backtest)"),
) -> None:
    """Rolling-origin backtest on the test cutoffs beside the statsforecast baselines."""
    from towerkit.core.config import load_config
    from towerkit.forecast.data import load_data
    from towerkit.forecast.evaluation import run_backtest
    from towerkit.forecast.recipe import ForecastRecipeConfig, load_forecaster

    loaded = load_forecaster(model)
    config = loaded.config
    if overrides:
        config = load_config(ForecastRecipeConfig, loaded.run_dir / "config.yaml", overrides)  # type: ignore[operator]
    models = [loaded.model, *(load_forecaster(m).model for m in also)]
    bases = {m.config.base for m in models} - {"last"}  # a "last" model ignores any base
    if len(bases) > 1:
        raise typer.BadParameter(f"models with different bases ({sorted(bases)}): one at a time")
    data = load_data(
        config.data, config.encoder, windows=False, base=bases.pop() if bases else "last"
    )
    target = out or (loaded.run_dir or Path(".")) / "backtest"
    result = run_backtest(models, config, data, target)
    _print_backtest(result, loaded.label)


def _print_backtest(result: Backtest, label: str) -> None:
    """The backtest's tables on the console; the files hold more (per cutoff, per repository)."""
    from towerkit.forecast.evaluation import (
        METRICS,
        horizon_cells,
        recalibration_lines,
        scale_cells,
        scale_headers,
    )

    table = Table(title=f"backtest of {label} ({len(result.rows)} rows)")
    table.add_column("method")
    for key in METRICS:  # the band's misses under short headers: the table fits 80 columns
        table.add_column(
            {"below_p10": "< p10", "above_p90": "> p90"}.get(key, key), justify="right"
        )
    order = sorted(result.scores, key=lambda n: result.overall(n)["mase"])
    for method in order:
        table.add_row(method, *(f"{result.overall(method)[k]:.4g}" for k in METRICS))
    console.print(table)
    months = len(next(iter(result.horizons.values()))["mase"])
    by_month = Table(title="MASE (p10..p90 coverage) per horizon month")
    by_month.add_column("method")
    for h in range(months):
        by_month.add_column(f"month {h + 1}", justify="right")
    for method in order:
        by_month.add_row(method, *horizon_cells(result.horizons[method]))
    console.print(by_month)
    by_size = Table(title="MASE / MAE by series scale (thirds of the rows; scale range, rows)")
    by_size.add_column("method")
    for header in scale_headers(result.scales[order[0]]):
        by_size.add_column(header, justify="right")
    for method in order:
        by_size.add_row(method, *scale_cells(result.scales[method]))
    console.print(by_size)
    for line in recalibration_lines(result.recalibrate)[:1]:
        console.print(line)
    for name, ratio in sorted(result.ratios.items(), key=lambda kv: kv[1].ratio):
        console.print(f"MASE {name} / {result.reference}: {ratio}")
    for path in result.files:
        console.print(f"wrote: {path}")


@app.command("predict")
def predict_command(
    model: str = typer.Argument(..., help="registry reference or run directory"),
    repos: list[str] | None = typer.Option(
        None, "--repo", help="owner/name; repeat it for several repositories"
    ),
    all_repos: bool = typer.Option(
        False, "--all", help="every repository of the corpus with enough history"
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="one repository: the PNG (default <run>/predict/<owner>_<name>.png), the JSON goes "
        "beside it; several: the CSV (default <run>/predict/forecasts.csv), a PNG each beside it",
    ),
    corpus: Path | None = typer.Option(
        None,
        "--corpus",
        help="forecast from this corpus folder (e.g. what fetch cached) instead of the model's",
    ),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="with several: a PNG each"),
    sort: str | None = typer.Option(
        None, "--sort", help="with several: order by this target's change, largest rise first"
    ),
) -> None:
    """The next 3 months of each target with p10..p90: a table, a JSON file and a PNG for one
    repository; a table of changes, a CSV and a PNG each for several (--repo ... --repo, --all)."""
    import dataclasses

    from towerkit.forecast.data import load_data
    from towerkit.forecast.predict import forecastable
    from towerkit.forecast.recipe import load_forecaster

    if repos and all_repos:
        raise TowerkitError("predict: --repo and --all: expected one of them, not both")
    if not repos and not all_repos:
        raise TowerkitError("predict: expected --repo owner/name (repeatable) or --all")
    several = all_repos or len(repos or []) > 1
    suffix = ".csv" if several else ".png"
    if out is not None and out.suffix.lower() != suffix:
        raise TowerkitError(f"--out {out}: expected a {suffix} path")
    if corpus is not None and not corpus.is_dir():
        raise TowerkitError(f"--corpus {corpus}: not a folder (expected owner/name/<metric>.json)")
    loaded = load_forecaster(model)
    data_config = loaded.config.data
    if corpus is not None:  # its own Parquet table, every repository in it
        data_config = dataclasses.replace(data_config, corpus=str(corpus), table="", repos_limit=0)
    base = loaded.model.config.base
    data = load_data(data_config, loaded.config.encoder, progress=False, windows=False, base=base)
    folder = (loaded.run_dir or Path(".")) / "predict"
    if not several:
        (repo,) = repos or []
        _predict_one(loaded, data, repo, out or folder / f"{repo.replace('/', '_')}.png")
        return
    names = forecastable(data) if all_repos else list(repos or [])
    if sort is not None and sort not in loaded.config.data.targets:
        targets = ", ".join(loaded.config.data.targets)
        raise TowerkitError(f"--sort {sort}: not a target of the model (expected one of {targets})")
    _predict_many(loaded, data, names, out or folder / "forecasts.csv", plots, sort)
    if all_repos and len(names) < len(data.panel.repos):
        skipped = len(data.panel.repos) - len(names)
        console.print(f"skipped {skipped}: fewer than {data_config.min_history} months of history")


def _predict_one(loaded: LoadedForecaster, data: ForecastData, repo: str, png: Path) -> None:
    from towerkit.core.io import write_json_atomic
    from towerkit.forecast.predict import forecast_repo, recalibration_note, training_note

    forecast = forecast_repo(loaded.model, data, repo, png, loaded.config.recalibrate)
    table = Table(title=f"{repo}: forecast by {loaded.label} from {forecast.last_month}")
    table.add_column("target")
    for month in forecast.months:
        table.add_column(escape(f"{month} p50 [p10, p90]"), justify="right")
    for t, name in enumerate(forecast.targets):
        table.add_row(name, *(forecast.cell(h, t) for h in range(len(forecast.months))))
    console.print(table)
    console.print(training_note(loaded.model, data))
    console.print(recalibration_note(loaded.model, data, loaded.config.recalibrate))
    console.print(f"plot: {forecast.png}")
    json_path = png.with_suffix(".json")
    write_json_atomic(json_path, forecast.to_json(loaded.label))
    console.print(f"json: {json_path}")


def _predict_many(
    loaded: LoadedForecaster,
    data: ForecastData,
    repos: list[str],
    csv: Path,
    plots: bool,
    sort: str | None,
) -> None:
    import math

    from rich.progress import Progress

    from towerkit.core.io import atomic_path
    from towerkit.forecast.predict import (
        forecast_repos,
        forecasts_frame,
        plot_forecasts,
        recalibration_note,
        training_note,
    )

    forecasts = forecast_repos(loaded.model, data, repos, loaded.config.recalibrate)
    console.print(training_note(loaded.model, data))
    console.print(recalibration_note(loaded.model, data, loaded.config.recalibrate))
    if sort is not None:
        t = forecasts[0].targets.index(sort)
        # largest rise first; no history or no known past (NaN) last
        forecasts.sort(key=lambda f: -f.change(t) if not math.isnan(f.change(t)) else math.inf)
    with atomic_path(csv) as tmp:
        forecasts_frame(forecasts, loaded.label).to_csv(tmp, index=False)
    if plots:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("plots", total=len(forecasts))
            plot_forecasts(data, forecasts, csv.parent, lambda: bar.advance(task))
    months = f"{forecasts[0].months[0]}..{forecasts[0].months[-1]}"
    table = Table(title=f"p50 over {months} vs the 3 months before, by {loaded.label}")
    table.add_column("repository")
    for name in forecasts[0].targets:
        table.add_column(name, justify="right")
    for f in forecasts:
        table.add_row(f.repo, *(f.change_cell(t) for t in range(len(f.targets))))
    console.print(table)
    console.print(f"csv: {csv}" + (" (and a PNG per repository beside it)" if plots else ""))
