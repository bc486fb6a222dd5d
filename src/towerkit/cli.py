"""``towerkit <domain> <verb>``: each area adds its own Typer sub-app here."""

from __future__ import annotations

import sys

import typer

from towerkit.core.errors import TowerkitError
from towerkit.core.quiet import quiet_library_bars

app = typer.Typer(
    name="towerkit",
    help="Real data to trained, evaluated and deployable PyTorch models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _add_subapps() -> None:
    from towerkit.commands.data import app as data_app
    from towerkit.commands.demo import demo
    from towerkit.commands.registry import app as registry_app
    from towerkit.forecast.cli import app as forecast_app
    from towerkit.rec.cli import app as rec_app
    from towerkit.repotune.cli import app as repotune_app
    from towerkit.zoo.cli import app as zoo_app

    app.add_typer(registry_app, name="registry", help="Registered models, versions and aliases.")
    app.add_typer(data_app, name="data", help="Named datasets and pretrained models.")
    app.add_typer(zoo_app, name="zoo", help="Vision, audio, text and concept models.")
    app.add_typer(
        rec_app, name="rec", help="Two-tower retrieval from an interaction store; sequential (seq)."
    )
    app.add_typer(
        forecast_app, name="forecast", help="Dual-tower forecasts of OpenDigger project metrics."
    )
    app.add_typer(
        repotune_app,
        name="repotune",
        help="Repository -> QA data -> LoRA fine-tune -> merged model -> evaluation.",
    )
    app.command("demo", help="Tour every domain's quick recipe; writes runs/demo/report.html.")(
        demo
    )


_add_subapps()


def main(argv: list[str] | None = None) -> int:
    """Entry point: a TowerkitError becomes one line on stderr and a non-zero exit."""
    quiet_library_bars()
    try:
        app(args=argv, standalone_mode=False)
    except TowerkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    except Exception as exc:  # usage errors: typer raises its own vendored click's exceptions
        import click

        if isinstance(exc, click.ClickException | typer.TyperException) and hasattr(
            exc, "format_message"
        ):
            # one line, like a TowerkitError: the unknown option, missing or bad argument
            message = " ".join(str(exc.format_message()).split())
            if message:  # empty: no arguments at all, and the help is already shown
                print(f"error: {message} (see --help)", file=sys.stderr)
            return int(getattr(exc, "exit_code", 2))
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
