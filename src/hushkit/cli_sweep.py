"""`hushkit sweep`: hyper-parameter search over DVC experiments (hushkit.sweep); hushkit.cli registers it.

Exit codes (hushkit.cli_errors): 0 the trials ran and at least one of the study's has completed, 2 could not act (a
bad space file, repository or storage, too many failed trials) or no trial has completed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hushkit.cli_errors import ERROR, one_line_errors


def sweep(
    space: Path = typer.Argument(..., metavar="SPACE.yaml", help="The search space file (docs/experiments.md, "
                                                                  "Sweeps)."),
    arch: str = typer.Option(..., "--arch", "-a", help="The architecture every trial trains (alone)."),
    trials: int = typer.Option(10, "--trials", "-n", min=1, help="Trials this process runs (others may run more of "
                                                                 "the same study at once)."),
    study: Optional[str] = typer.Option(None, "--study", show_default="ARCH-<space file's name>",
                                        help="The study's name: the same name and storage continue it (or work on "
                                             "it from several processes and hosts at once)."),
    storage: Optional[str] = typer.Option(None, "--storage", envvar="HUSHKIT_SWEEP_STORAGE",
                                          show_default="sqlite:///optuna.db in the repository",
                                          help="The study's database URL, e.g. postgresql://user:pw@host/optuna "
                                               "for a team."),
    metric: str = typer.Option("val_loss", "--metric", "-m",
                               help="The objective: val_loss (minimised, from the train stage's metrics), or a "
                                    "test score the evaluate stage adds (maximised): pesq, stoi, estoi, si_sdr, "
                                    "dnsmos_sig, dnsmos_bak, dnsmos_ovr."),
    max_failures: int = typer.Option(3, "--max-failures", min=1,
                                     help="Stop after this many trials failed in a row (pruned ones do not count)."),
) -> None:
    """Tune one architecture with Optuna (TPE): every trial is a `dvc exp run --temp` with the trial's params as
    -S overrides and an MLflow run; hopeless trials are pruned from their per-epoch validation loss. Run it from the
    repository root: trials start from HEAD plus the workspace's uncommitted changes (apply a profile first with
    `hushkit params --profile NAME`). Ends with the best trial as a params diff and the `dvc exp apply` command."""
    from hushkit.errors import UserError
    from hushkit.sweep.runner import run_sweep

    with one_line_errors(UserError, FileNotFoundError, ValueError):
        done = run_sweep(space, arch=arch, trials=trials, study=study, storage=storage, metric=metric,
                         repo=Path.cwd(), max_failures=max_failures, echo=typer.echo)
    if not any(trial.state.name == "COMPLETE" for trial in done.trials):
        raise typer.Exit(code=ERROR)
