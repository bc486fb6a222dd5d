"""``towerkit rec ...``: each part of the domain adds its commands through ``register(app)``."""

from __future__ import annotations

import typer

from towerkit.rec.abtest.cli import register as register_abtest
from towerkit.rec.sequential.cli import seq_app
from towerkit.rec.serving.cli import register as register_serving
from towerkit.rec.store.cli import register as register_store
from towerkit.rec.twotower.cli import register as register_twotower

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)

for _register in (register_store, register_twotower, register_serving, register_abtest):
    _register(app)
app.add_typer(seq_app, name="seq")
