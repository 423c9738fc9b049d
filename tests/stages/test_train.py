"""The train stage's own settings (the training loop itself is tested in tests/training)."""
from __future__ import annotations

import json

import pytest

from hushkit.config import TrainConfig
from hushkit.stages.train import crop_samples
from tests.conftest import sigkill_when


def test_crop_length_defaults_to_the_features_stage():
    assert crop_samples(None, 16000, default=32000) == 32000


def test_an_architecture_can_train_on_shorter_crops():
    assert crop_samples(0.5, 16000, default=32000) == 8000
    assert crop_samples(1, 8000, default=16000) == 8000


@pytest.mark.parametrize("bad", [0, -1.0, "1.0", True])
def test_bad_crop_length_names_the_key(bad):
    with pytest.raises(ValueError, match=r"^train\.segment_seconds must be"):
        TrainConfig.parse({"epochs": 1, "batch_size": 2, "steps_per_epoch": 1, "lr": 1e-3, "segment_seconds": bad},
                          "train")


def test_the_config_holds_the_stage_keys_and_the_crops_the_stage_sets():
    """segment_seconds is the stage's (it decides TrainConfig.segment with the features stage's rate)."""
    config = TrainConfig.parse({"epochs": 1, "batch_size": 2, "steps_per_epoch": 1, "lr": 1e-3,
                                "segment_seconds": 0.5}, "train", segment=8000)
    assert config.segment == 8000 and config.val_segment == 0 and config.segment_seconds == 0.5


# --- a stage killed outright, then resumed ----------------------------------------------------------------------
KILLABLE_STAGE = """
import sys, time
from pathlib import Path
import torch, yaml
import hushkit.training.loop as loop
from hushkit.stages import train

params_file, features, rirs, out, state_dir, hang_at = sys.argv[1:7]
params = yaml.safe_load(Path(params_file).read_text())
torch.set_num_threads(1)
save = loop.save_training_state

def save_then_hang(path, fingerprint, state):
    save(path, fingerprint, state)
    print(f"SAVED epoch {state['epoch']}", flush=True)
    if state["epoch"] == int(hang_at):
        time.sleep(300)   # mid-training, its state saved: wait here to be killed

loop.save_training_state = save_then_hang
train.run(params["train"], arch="crced", features=Path(features), rirs=Path(rirs), out=Path(out),
          state_dir=Path(state_dir), params=params)
"""


def test_a_stage_killed_mid_training_leaves_no_run_running(tiny_params, features_dir, rirs_dir,
                                                          mlflow_template_store, tmp_path):
    """SIGKILL after epoch 1 of 3: the resumed stage closes the dead attempt's run as KILLED, links the two runs,
    and its own run (FINISHED) holds every epoch's curve."""
    import copy
    import os
    import shutil
    import subprocess
    import sys

    import yaml
    from mlflow import MlflowClient

    from hushkit import tracking

    params = copy.deepcopy(tiny_params)
    params["train"]["models"]["crced"].update(epochs=3, steps_per_epoch=2, checkpoint_every=1, audio_examples=1)
    params["mlflow"]["experiment"] = "killed"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "stage.py").write_text(KILLABLE_STAGE)
    shutil.copy(mlflow_template_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop(tracking.PARENT_ENV, None)
    state_dir = tmp_path / "resume"

    def stage(hang_at: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "stage.py", "params.yaml", str(features_dir), str(rirs_dir), "out", str(state_dir),
                                 str(hang_at)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    sigkill_when(stage(hang_at=1), "SAVED epoch 1")

    resumed = stage(hang_at=0)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "resuming from epoch 1" in output

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("killed")
    runs = client.search_runs([experiment.experiment_id], "tags.stage = 'train'", order_by=["attributes.start_time"])
    assert [run.info.status for run in runs] == ["KILLED", "FINISHED"]
    assert f"closed run {runs[0].info.run_id} as KILLED" in output
    dead, done = runs
    assert dead.data.tags[tracking.NEXT_ATTEMPT_TAG] == done.info.run_id
    assert done.data.tags[tracking.PREVIOUS_ATTEMPT_TAG] == dead.info.run_id
    assert sorted(m.step for m in client.get_metric_history(done.info.run_id, "val_loss")) == [1, 2, 3]
    assert not list(state_dir.glob("*")), "the finished stage left resume files behind"
    # What else the weights depend on, recorded with the run and in the checkpoint.
    from hushkit.models import load_checkpoint

    _, meta = load_checkpoint(tmp_path / "out" / "model.pt")
    machine = meta["environment"]
    assert machine["cpu.model"] and machine["threads"] == "1" and machine["torch"] and machine["onednn"] != "none"
    assert all(done.data.tags[f"env.{key}"] == value for key, value in machine.items())


# --- the stage under torchrun -----------------------------------------------------------------------------------

@pytest.mark.parametrize("launch", ["torchrun", "params"])
def test_under_torchrun_rank_0_alone_logs_prints_and_writes(tiny_params, features_dir, rirs_dir,
                                                            mlflow_template_store, tmp_path, launch):
    """Two CPU processes train one architecture: one MLflow run, one summary line, one set of outputs; started
    by hand under torchrun, or by the stage itself when `processes` asks for two."""
    import copy
    import os
    import shutil
    import subprocess
    import sys

    import yaml
    from mlflow import MlflowClient

    from hushkit import tracking

    params = copy.deepcopy(tiny_params)
    params["train"]["common"]["device"] = "cpu"
    params["train"]["models"]["crced"].update(epochs=2, steps_per_epoch=2, batch_size=4, audio_examples=1)
    params["mlflow"]["experiment"] = "torchrun"
    params["train"]["common"]["attenuation_limit"] = {"db": "auto", "utterances": 4}  # rank 0 chooses it
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copy(mlflow_template_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop(tracking.PARENT_ENV, None)
    stage = ["-m", "hushkit.stages.train", "--params", "params.yaml", "--arch", "crced", "--features",
             str(features_dir), "--rirs", str(rirs_dir), "--out", "out", "--state-dir", "resume"]
    if launch == "torchrun":
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *stage]
    else:
        params["train"]["common"]["processes"] = 2
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        command = [sys.executable, *stage]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("epoch 2/2:") == 1
    assert done.stdout.count("train: crced") == 1 and "on 2 processes of cpu" in done.stdout
    assert ("starting 2 training processes: torchrun" in done.stdout) == (launch == "params")
    assert done.stdout.count("crced: attenuation limit ") == 1 and "(validation STOI on " in done.stdout
    chosen = json.loads((tmp_path / "out" / "metrics.json").read_text())["attenuation_limit_db"]
    assert chosen in (None, 20.0, 15.0, 10.0)
    from hushkit.models import load_checkpoint
    assert load_checkpoint(tmp_path / "out" / "model.pt")[0].attenuation_limit_db == chosen
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("torchrun").experiment_id], "tags.stage = 'train'")
    assert [run.data.tags["processes"] for run in runs] == ["2"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "checks", "history.csv", "metrics.json", "model.pt", "timing.json"]
    assert not list((tmp_path / "resume").glob("*"))
