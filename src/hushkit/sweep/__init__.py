"""Hyper-parameter sweeps: Optuna (TPE) over a search space declared in a YAML file, every trial a DVC experiment
of one architecture (`dvc exp run --temp -S ...`) and an MLflow run, hopeless trials pruned from their per-epoch
validation loss, the study kept in a database that several processes and hosts share (`hushkit sweep`).

    space.py    the search space file: parsed and checked against params.yaml
    storage.py  the study's database (sqlite beside the MLflow store by default, PostgreSQL for a team)
    pruning.py  what a trial's train stage reports each epoch, and the pruned trial's exception
    trials.py   one trial as a DVC experiment, and its score from the experiment's metrics
    runner.py   the study: trials one after another, the best trial as a ready command

The train stage imports pruning.py (and storage.py) alone, and only loads Optuna inside a sweep's trial.
"""
