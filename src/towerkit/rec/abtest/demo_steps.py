"""The A/B step of the rec demo (``towerkit.rec.demo.STEPS``): a challenger trained for one step
against the demo's trained model, replayed on the store's held-out likes and analysed.

A one-step model is a deliberately poor control, so the report shows what a real difference looks
like (a lift with its interval, a tiny p-value, no sample-ratio mismatch); the slow tests also
check that A = B finds nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from towerkit.rec.demo import DemoContext

ONE_STEP = "trainer.stages=[{epochs: 1, max_steps: 1, lr: 0.003}]"


def abtest_step(ctx: DemoContext) -> None:
    from towerkit.rec.abtest.workflow import SimulateOptions, save_outputs, simulate_refs
    from towerkit.rec.twotower.recipe import train

    assert ctx.version_ref is not None and ctx.export_dir is not None
    control = train(
        None,
        [*ctx.overrides, ONE_STEP],
        data_dir=ctx.export_dir,
        runs_root=ctx.out_dir / "runs",
        promote="never",
    )
    assert control.version is not None
    options = SimulateOptions(
        db=ctx.db_url, a=control.version.uri, b=ctx.version_ref, salt="towerkit-demo"
    )
    report, start, users = simulate_refs(options)
    outputs = save_outputs(report, ctx.out_dir / "abtest")
    conversion = next(c for c in report.comparisons if c.metric == "conversion")
    assert conversion.proportion is not None
    test = conversion.proportion
    ctx.metrics["abtest_users"] = float(users)
    ctx.metrics["abtest_conversion_lift"] = test.diff
    ctx.metrics["abtest_conversion_p_value"] = test.p_value
    ctx.metrics["abtest_srm_p_value"] = report.srm.p_value
    ctx.plots.append(outputs.png_path)
    ctx.notes.append(
        f"abtest: {users} users with likes from {start:%Y-%m-%d} on, A = {options.a} "
        f"(one training step), B = {options.b}: conversion@{options.k} "
        f"{test.diff:+.3f} [{test.diff_ci_low:+.3f}, {test.diff_ci_high:+.3f}], "
        f"p = {test.p_value:.2g}; SRM p = {report.srm.p_value:.2f}; {outputs.json_path}"
    )
