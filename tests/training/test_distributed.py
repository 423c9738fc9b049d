"""Training under torchrun (hushkit.training.distributed): two CPU processes (gloo), each on its half of every batch,
train to the weights of one process with the same global batch; rank 0 alone reports and saves the state, which a
restarted pair resumes from; what cannot run distributed is refused in one line.

The two processes start from a fork server (a clean process: forking this one, whose earlier tests left threads
behind, can copy a lock another thread holds and hang the child) with the environment torchrun gives its workers
(WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), and run tests/training/distributed_worker.py, which
torchrun can start as well. Each process leaves through ``torchrun_processes``, whose barrier keeps either from
tearing the process group down while its peer still has a collective queued (the hang these tests once met). A
child still stuck near the time limit prints every thread's stack and exits."""
from __future__ import annotations

import faulthandler
import multiprocessing
import os
import shutil
import socket

import numpy as np
import pytest
import torch

from hushkit.training.distributed import Processes, torchrun_processes
from hushkit.training.loop import Trainer
from tests.training import distributed_worker
from tests.training.distributed_worker import train_case
from tests.training.test_loop import synthetic_split, tiny_config, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")

WORLD_SIZE = 2
# The processes' batch statistics and gradients are sums in another order than one process's: float noise.
WEIGHT_TOLERANCE = 1e-5
# Generous: two fresh processes on a busy 2-core machine (each needs a few CPU-seconds).
LAUNCH_TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rank(rank: int, port: int, argv: list[str]) -> None:
    faulthandler.dump_traceback_later(LAUNCH_TIMEOUT_S - 60, exit=True)   # a hang says where, before the kill
    os.environ.update(WORLD_SIZE=str(WORLD_SIZE), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    distributed_worker.main(argv)


def launch(*argv: str) -> None:
    """distributed_worker.main(argv) in WORLD_SIZE processes, as torchrun would start them; both must succeed."""
    context = multiprocessing.get_context("forkserver")
    # Imported once by the fork server, not by every child: DDP's constructor imports torch._dynamo (seconds).
    context.set_forkserver_preload(["torch._dynamo", "tests.training.distributed_worker"])
    port = _free_port()
    processes = [context.Process(target=_rank, args=(rank, port, list(argv))) for rank in range(WORLD_SIZE)]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join(LAUNCH_TIMEOUT_S)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    assert [p.exitcode for p in processes] == [0] * WORLD_SIZE, "a training process failed (its traceback is above)"


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed")
    launch(str(out), "crced", "crnn", "segan")
    return out


@pytest.fixture(scope="module")
def tiny_splits():
    return synthetic_split(0), synthetic_split(1)


def assert_close_weights(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(actual[key], value, rtol=0, atol=WEIGHT_TOLERANCE, msg=key)


@pytest.mark.parametrize("case", ["crced", "crnn"])
def test_two_processes_train_to_the_weights_of_one_with_the_same_global_batch(first_run, case):
    main, other = (torch.load(first_run / f"{case}.rank{rank}.pt") for rank in range(WORLD_SIZE))
    single = train_case(case)
    assert_close_weights(main["weights"], single.model.state_dict())
    for key, value in main["weights"].items():  # DDP keeps the processes' weights identical
        assert torch.equal(other["weights"][key], value), key
    for name in ("train_loss", "val_loss"):  # the train loss averaged over the processes' parts
        np.testing.assert_allclose([row[name] for row in main["history"]],
                                   [row[name] for row in single.history], rtol=1e-5)
    assert main["reported"] == [1, 2] and other["reported"] == []  # rank 0 alone reports


def test_a_restarted_pair_resumes_from_rank_0s_state_to_the_same_weights(first_run):
    # The state rank 0 saved after epoch 1 of the first run, as a killed run would have left it.
    shutil.copy(first_run / "crced.epoch1.pt", first_run / "crced.resumed.state.pt")
    launch(str(first_run), "crced", "--resume")
    uninterrupted = torch.load(first_run / "crced.rank0.pt")
    for rank in range(WORLD_SIZE):
        resumed = torch.load(first_run / f"crced.resumed.rank{rank}.pt")
        assert resumed["reported"] == ([2] if rank == 0 else [])  # epoch 1 came from the state
        assert without_timing(resumed["history"]) == without_timing(uninterrupted["history"])
        for key, value in uninterrupted["weights"].items():
            assert torch.equal(resumed["weights"][key], value), key


def test_processes_that_find_different_states_refuse_to_resume(first_run):
    # Rank 0 finds epoch 1's state, rank 1 none (as on hosts without a shared filesystem).
    shutil.copy(first_run / "crnn.epoch1.pt", first_run / "crnn.resumed.rank0.state.pt")
    launch(str(first_run), "crnn", "--resume", "--private-states")
    for rank in range(WORLD_SIZE):
        assert (first_run / f"crnn.resumed.rank{rank}.error").read_text() == (
            "the 2 training processes disagree on the epoch to resume from (from 0 to 1): every process must read "
            f"the same {first_run / f'crnn.resumed.rank{rank}.state.pt'} (on several hosts, from a filesystem they "
            "share)")


def without_timing(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{key: value for key, value in row.items() if key != "epoch_seconds"} for row in history]


def test_the_adversarial_step_is_refused_in_one_line(first_run):
    for rank in range(WORLD_SIZE):
        assert (first_run / f"segan.rank{rank}.error").read_text() == (
            "train.adversarial: the discriminator's step (weight > 0) does not run under torchrun yet: train this "
            "architecture in one process")


def test_a_global_batch_that_does_not_divide_among_the_processes_is_refused():
    with pytest.raises(ValueError, match=r"^train\.batch_size 4 does not divide among 3 processes: make it a "
                                         r"multiple of 3$"):
        Trainer(tiny_model(), synthetic_split(0), synthetic_split(1), tiny_config(batch_size=4),
                torch.device("cpu"), processes=Processes(rank=0, world_size=3))


def test_the_processes_parts_split_the_global_batch():
    examples = np.arange(8)
    parts = [examples[Processes(rank=rank, world_size=4).part(8)] for rank in range(4)]
    assert [list(part) for part in parts] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert list(examples[Processes().part(8)]) == list(examples)


def test_a_part_of_a_fixed_batch_is_that_part_and_draws_as_the_whole(tiny_splits):
    train, _ = tiny_splits
    whole_rng, part_rng = np.random.default_rng(4), np.random.default_rng(4)
    whole = train.batch(0, 4, 1024, whole_rng)
    part = train.batch(0, 4, 1024, part_rng, part=slice(2, 4))
    for full, piece in zip(whole, part):
        assert torch.equal(piece, full[2:4])
    assert whole_rng.random() == part_rng.random()  # the next batch is the same in every process


@pytest.mark.parametrize("world_size", [None, "1"])
def test_a_single_process_joins_no_process_group(monkeypatch, world_size):
    if world_size is None:
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("WORLD_SIZE", world_size)
    with torchrun_processes(torch.device("cpu")) as processes:
        assert processes == Processes() and not torch.distributed.is_initialized()
        model = tiny_model()
        assert processes.wrap(model) is model and processes.average(0.25) == 0.25


def test_several_processes_without_torchruns_ranks_are_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match="^WORLD_SIZE=2 needs RANK and LOCAL_RANK too: start the processes with "
                                         "torchrun$"):
        with torchrun_processes(torch.device("cpu")):
            pass


def test_auto_asks_for_one_process_per_visible_gpu(monkeypatch):
    from hushkit.training.distributed import processes_wanted

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert processes_wanted("auto", torch.device("cuda")) == 4
    assert processes_wanted("auto", torch.device("cpu")) == 1  # training on the CPU: one process
    assert processes_wanted(3, torch.device("cpu")) == 3
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert processes_wanted("auto", torch.device("cuda")) == 1


@pytest.mark.parametrize("bad", ["many", 0, -2])
def test_a_bad_process_count_names_the_key(bad):
    from hushkit.config import TrainParams
    from hushkit.config.schema import ParamsError

    with pytest.raises(ParamsError, match=r"train\.common\.processes"):
        TrainParams.parse({"architectures": ["crced"], "common": {"epochs": 1, "batch_size": 4,
                                                                  "steps_per_epoch": 1, "lr": 0.1,
                                                                  "processes": bad}}, "train")
