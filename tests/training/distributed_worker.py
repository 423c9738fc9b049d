"""One of the processes that tests/training/test_distributed.py starts with torchrun:

    torchrun --standalone --nproc_per_node 2 -m tests.training.distributed_worker OUT CASE...

trains each CASE on its part of every batch and saves, per process, what the test compares (OUT/<case>.rank<R>.pt:
the final weights, the history and the epochs this process reported; OUT/<case>.rank<R>.error: the message a
refused CASE raised). A first run copies its state after epoch 1 aside (OUT/<case>.epoch1.pt); with `--resume`,
each CASE continues from OUT/<case>.resumed.state.pt (with `--private-states`, each process from a file of its own,
OUT/<case>.resumed.rank<R>.state.pt). The same cases train in one process (`train_case` with the
default Processes) for the reference; the test starts `main` in forked processes with torchrun's environment."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from hushkit.models import build_model
from hushkit.training.distributed import Processes, torchrun_processes
from hushkit.training.dynamic import DynamicMixer
from hushkit.training.loop import Trainer
from tests.training.test_dynamic import RATE, pool, settings_of
from tests.training.test_loop import TINY_CRCED, synthetic_split, tiny_config
from tests.models.test_segan import SMALL as SEGAN_SMALL

TINY_CRNN = {"n_fft": 64, "hop": 32, "channels": [4, 4], "hidden": 8, "layers": 1}

CASES = {
    # The mix stage's pairs, mixup across the global batch, an EMA, and every spectral loss term.
    "crced": {"arch": "crced", "model_args": TINY_CRCED, "mixing": "fixed",
              "settings": {"mixup_alpha": 0.4, "ema_decay": 0.9, "loss": {"spectral": 1.0, "waveform_l1": 1.0}}},
    # A recurrent model on dynamic mixing (each process mixes only its part), with the GTCRN loss mix.
    "crnn": {"arch": "crnn", "model_args": TINY_CRNN, "mixing": "dynamic",
             "settings": {"loss": {"compressed_magnitude": 0.7, "compressed_complex": 0.3, "si_sdr": 0.001}}},
    # The adversarial step is refused under torchrun.
    "segan": {"arch": "segan", "model_args": SEGAN_SMALL, "mixing": "fixed",
              "settings": {"adversarial": {"weight": 0.1}}},
}


def train_case(case: str, processes: Processes = Processes(), **trainer_args) -> Trainer:
    """CASE's trainer (fitted), from seed-fixed initial weights and data."""
    spec = CASES[case]
    if spec["mixing"] == "fixed":
        train = synthetic_split(0)
    else:
        train = DynamicMixer(pool("speech", 6, 1), pool("noise", 4, 2), None, settings_of({"second_noise": 0.5}),
                             RATE, seed=0, device=processes.device)
    torch.manual_seed(0)
    model = build_model(spec["arch"], **spec["model_args"])
    config = tiny_config(epochs=2, steps_per_epoch=2, **spec["settings"])
    trainer = Trainer(model, train, synthetic_split(1), config, processes.device, processes=processes,
                      fingerprint=case, **trainer_args)
    trainer.fit()
    return trainer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("cases", nargs="+", choices=sorted(CASES))
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--private-states", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # gentle on a shared machine
    with torchrun_processes(torch.device("cpu")) as processes:
        for case in args.cases:
            run = f"{case}.resumed" if args.resume else case
            state = args.out / (f"{run}.rank{processes.rank}.state.pt" if args.private_states else f"{run}.state.pt")
            reported: list[int] = []

            def on_epoch(metrics, epoch, state=state, case=case):
                reported.append(epoch)
                if epoch == 2 and not args.resume:  # epoch 1's state, before epoch 2's replaces it
                    shutil.copy(state, args.out / f"{case}.epoch1.pt")

            try:
                trainer = train_case(case, processes, on_epoch=on_epoch, state_path=state)
            except ValueError as err:
                (args.out / f"{run}.rank{processes.rank}.error").write_text(str(err))
                continue
            torch.save({"weights": trainer.model.state_dict(), "history": trainer.history, "reported": reported},
                       args.out / f"{run}.rank{processes.rank}.pt")
            del trainer   # its DDP wrapper goes while the process group is still there


if __name__ == "__main__":
    main()
