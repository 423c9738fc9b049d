"""Resumable training state: the file itself, and runs interrupted (by an exception, or by SIGKILL in a child
process) that resume to exactly the weights of an uninterrupted run."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from hushkit.training.loop import Trainer
from hushkit.training.state import load_training_state, save_training_state
from tests.conftest import sigkill_when
from tests.training.test_loop import TINY_CRCED, synthetic_split, tiny_config, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_state_round_trips_with_weights_only(tmp_path):
    rng = np.random.default_rng(5)
    rng.random(3)
    state = {"epoch": 2, "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
             "history": [{"epoch": 1, "val_loss": float("nan")}], "best_val": float("inf"), "best_state": None,
             "model": {"w": torch.arange(3.0)}}
    path = tmp_path / "state.pt"
    save_training_state(path, "run-a", state)
    save_training_state(path, "run-a", state)  # replacing an existing state
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]  # no temp file left behind
    torch.load(path, weights_only=True)  # plain containers only: nothing pickled runs on load
    loaded = load_training_state(path, "run-a")
    assert loaded["epoch"] == 2 and torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert torch.equal(loaded["torch_rng"], state["torch_rng"])
    restored = np.random.default_rng(0)
    restored.bit_generator.state = loaded["numpy_rng"]
    assert restored.random() == rng.random()


def test_a_state_of_another_run_or_format_is_ignored_saying_why(tmp_path):
    path = tmp_path / "state.pt"
    said = []
    assert load_training_state(path, "run-a", log=said.append) is None and not said  # nothing saved: silent
    save_training_state(path, "run-a", {"epoch": 1})
    assert load_training_state(path, "run-b", log=said.append) is None
    assert "different run" in said[-1]
    torch.save({"format": 0, "fingerprint": "run-a", "epoch": 1}, path)
    assert load_training_state(path, "run-a", log=said.append) is None
    assert "format" in said[-1]


# --- resuming inside one process --------------------------------------------------------------------------------

class Interrupted(Exception):
    pass


def run_to_the_end(arch, overrides, state_path=None, interrupt_at=None, fingerprint="run"):
    """A fresh model and Trainer (as a restarted process would build them); fit, optionally interrupted by an
    exception from on_epoch at epoch `interrupt_at` (that epoch's state is not saved)."""
    def on_epoch(metrics, epoch):
        if epoch == interrupt_at:
            raise Interrupted

    trainer = Trainer(tiny_model(arch), synthetic_split(0), synthetic_split(1), tiny_config(**overrides),
                      torch.device("cpu"), on_epoch=on_epoch, state_path=state_path, fingerprint=fingerprint)
    trainer.fit()
    return trainer


CASES = {
    # SWA with its own LR starts in epoch 2: the state saved after it holds the SWA model and SWALR.
    "crced": {"epochs": 4, "swa": {"start_epoch": 2, "lr": 5e-4}, "mixup_alpha": 0.4,
              "schedule": {"name": "step", "step_every_epochs": 1, "warmup_steps": 3},
              "early_stopping": {"patience": 3}},
    # EMA, the discriminator and its optimizer, and the latent z drawn from torch's generator in every step.
    "segan": {"epochs": 3, "ema_decay": 0.9, "adversarial": {"weight": 0.1}},
}


@pytest.mark.parametrize("arch", sorted(CASES))
def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, capsys, arch):
    overrides = CASES[arch]
    reference = run_to_the_end(arch, overrides)
    state_path = tmp_path / "state.pt"
    interrupt_at = overrides["epochs"]  # the last epoch: resume from the one before
    with pytest.raises(Interrupted):
        run_to_the_end(arch, overrides, state_path, interrupt_at=interrupt_at)
    assert torch.load(state_path, weights_only=True)["epoch"] == interrupt_at - 1
    torch.manual_seed(123)  # whatever happened to the global generator meanwhile: the state restores it
    resumed = run_to_the_end(arch, overrides, state_path)
    assert f"resuming from epoch {interrupt_at - 1}" in capsys.readouterr().out
    assert_same_weights(resumed.model.state_dict(), reference.model.state_dict())
    assert [row["val_loss"] for row in resumed.history] == [row["val_loss"] for row in reference.history]
    assert resumed.best_val == reference.best_val
    if arch == "segan":
        assert_same_weights(resumed.hooks["adversarial"].state_dict()["discriminator"],
                            reference.hooks["adversarial"].state_dict()["discriminator"])
    assert state_path.exists()  # deleting it is the caller's business


def test_a_state_saved_for_another_run_is_not_resumed(tmp_path, capsys):
    state_path = tmp_path / "state.pt"
    with pytest.raises(Interrupted):
        run_to_the_end("crced", {}, state_path, interrupt_at=2, fingerprint="data-v1")
    trainer = run_to_the_end("crced", {}, state_path, fingerprint="data-v2")
    out = capsys.readouterr().out
    assert "different run" in out and "resuming" not in out
    assert [row["epoch"] for row in trainer.history] == [1, 2]
    assert torch.load(state_path, weights_only=True)["epoch"] == 2  # replaced by this run's state


def test_a_run_that_stopped_early_stays_stopped_on_resume(tmp_path, monkeypatch):
    state_path = tmp_path / "state.pt"
    config = tiny_config(epochs=4, early_stopping={"patience": 1})
    first = Trainer(tiny_model(), synthetic_split(0), synthetic_split(1), config, torch.device("cpu"),
                    state_path=state_path)
    scripted = iter([1.0, 1.5])
    monkeypatch.setattr(first, "validate", lambda: next(scripted))
    first.fit()
    assert first.stopped_epoch == 2
    again = Trainer(tiny_model(), synthetic_split(0), synthetic_split(1), config, torch.device("cpu"),
                    state_path=state_path)
    monkeypatch.setattr(again, "train_step", lambda noisy, clean: pytest.fail("a stopped run trained on"))
    assert again.fit() == first.history and again.stopped_epoch == 2
    assert_same_weights(again.model.state_dict(), first.model.state_dict())


def test_checkpoint_every_n_epochs(tmp_path):
    saved = []
    state_path = tmp_path / "state.pt"
    trainer = Trainer(tiny_model(), synthetic_split(0), synthetic_split(1), tiny_config(epochs=3, checkpoint_every=2),
                      torch.device("cpu"), state_path=state_path,
                      on_epoch=lambda m, e: saved.append(state_path.exists() and torch.load(state_path)["epoch"]))
    trainer.fit()
    # on_epoch runs before the epoch's save: it sees the previous checkpoint.
    assert saved == [False, False, 2] and torch.load(state_path)["epoch"] == 2


def assert_same_weights(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key


# --- resuming after SIGKILL -------------------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys, time
    import torch
    from hushkit.models import build_model
    from hushkit.training.data import PackedSplit
    from hushkit.config import TrainConfig
    from hushkit.training.dynamic import training_source
    from hushkit.training.loop import Trainer

    data, state_path, out, hang_at, mixing = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    torch.set_num_threads(1)  # gentle on a shared machine; the same in every run of this script
    torch.manual_seed(0)
    model = build_model("crced", **{model_args!r})
    config = TrainConfig.parse({{
        "epochs": 3, "batch_size": 4, "steps_per_epoch": 3, "lr": 1e-3, "weight_decay": 0.0,
        "loss": {{"waveform_l1": 1.0}}, "ema_decay": 0.9, "mixup_alpha": 0.4, "checkpoint_every": 1,
        "mixing": mixing, "dynamic_mixing": {{"second_noise": 0.5, "eq": 0.5, "clipping": 0.2}}}}, segment=1024)

    def on_epoch(metrics, epoch):
        if epoch == hang_at:  # epoch hang_at - 1 is saved, this one is not: wait here to be killed
            print("HANGING", flush=True)
            time.sleep(120)

    train = training_source(config, data, None, 16000, device=torch.device("cpu"))
    trainer = Trainer(model, train, PackedSplit.load(f"{{data}}/val"), config,
                      torch.device("cpu"), on_epoch=on_epoch, state_path=None if state_path == "-" else state_path,
                      fingerprint="kill-test")
    trainer.fit()
    torch.save(trainer.model.state_dict(), out)
""").format(model_args=TINY_CRCED)


def save_split(split, directory) -> None:
    directory.mkdir(parents=True)
    np.save(directory / "clean.npy", split.clean)
    np.save(directory / "noisy.npy", split.noisy)
    split.index.to_csv(directory / "index.csv", index=False)


def save_pools(directory) -> None:
    """Speech and noise pools as the features stage packs them, for dynamic mixing."""
    directory.mkdir(parents=True)
    for kind, seed in (("speech", 2), ("noise", 3)):
        split = synthetic_split(seed)
        np.save(directory / f"{kind}.npy", split.clean if kind == "speech" else split.noisy - split.clean)
        split.index.to_csv(directory / f"{kind}.csv", index=False)


def child(tmp_path, state: str, out: str, hang_at: int = 0, mixing: str = "fixed") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(tmp_path / "child.py"), str(tmp_path / "data"), state,
                             str(tmp_path / out), str(hang_at), mixing],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    return output


@pytest.mark.parametrize("mixing", ["fixed", "dynamic"])
def test_a_killed_run_resumes_to_the_same_weights(tmp_path, mixing):
    (tmp_path / "child.py").write_text(CHILD)
    save_split(synthetic_split(0), tmp_path / "data" / "train")
    save_split(synthetic_split(1), tmp_path / "data" / "val")
    save_pools(tmp_path / "data" / "pools")
    state_path = tmp_path / "state.pt"

    sigkill_when(child(tmp_path, str(state_path), "never.pt", hang_at=2, mixing=mixing), "HANGING", timeout=60)
    assert torch.load(state_path, weights_only=True)["epoch"] == 1

    resumed = finish(child(tmp_path, str(state_path), "resumed.pt", mixing=mixing))
    assert "resuming from epoch 1" in resumed
    finish(child(tmp_path, "-", "uninterrupted.pt", mixing=mixing))
    assert_same_weights(torch.load(tmp_path / "resumed.pt"), torch.load(tmp_path / "uninterrupted.pt"))
    assert not (tmp_path / "never.pt").exists()
