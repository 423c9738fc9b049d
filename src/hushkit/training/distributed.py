"""Data-parallel training over the processes torchrun starts (DistributedDataParallel).

`torchrun --nproc_per_node N ...` sets WORLD_SIZE, RANK and LOCAL_RANK in each process; `torchrun_processes`
reads them and joins the process group: gloo on CPU, nccl on CUDA (each process on GPU cuda:LOCAL_RANK). Without
them (or with WORLD_SIZE=1) it is a single process and nothing changes: no process group, no wrapper, the same
bit-identical training as a plain run.

Every process draws the same global batch (the sources are seeded alike: hushkit.training.data,
hushkit.training.dynamic) and trains on its own slice of it (`Processes.part`); DDP averages the gradients, and
every loss term is a mean over examples, so each update equals the single-process one on the global batch.
BatchNorm layers compute their statistics over the global batch too (torch's SyncBatchNorm on CUDA; on CPU, where
torch's does not run, `CpuSyncBatchNorm` does the same with gloo).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Processes:
    """The training processes, as this one sees them; the default is a single process."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")  # this process's device (collectives of nccl run on it)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that reports, logs and writes files."""
        return self.rank == 0

    def check_batch_size(self, batch_size: int) -> None:
        if batch_size % self.world_size:
            raise ValueError(f"train.batch_size {batch_size} does not divide among {self.world_size} processes: "
                             f"make it a multiple of {self.world_size}")

    def part(self, batch_size: int) -> slice:
        """This process's examples of a global batch of `batch_size` (all of it in a single process)."""
        if not self.distributed:
            return slice(None)
        self.check_batch_size(batch_size)
        share = batch_size // self.world_size
        return slice(self.rank * share, (self.rank + 1) * share)

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to run the training forward pass through: `model` itself in a single process, else
        DistributedDataParallel around it (rank 0's weights broadcast to all), with its BatchNorm layers turned
        into synchronised ones in place (same parameters and buffers, so `model`'s state_dict keeps its keys)."""
        if not self.distributed:
            return model
        synchronise_batch_norm(model, self.device)
        on_cuda = self.device.type == "cuda"
        return nn.parallel.DistributedDataParallel(model, device_ids=[self.device] if on_cuda else None)

    def average(self, value: float) -> float:
        """The mean of `value` over the processes (a figure every process measured on its own part)."""
        if not self.distributed:
            return value
        total = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return float(total) / self.world_size

    def from_main(self, compute: Callable[[], float]) -> float:
        """`compute()` run by rank 0 alone, its result given to every process (so every process decides alike)."""
        if not self.distributed:
            return compute()
        value = torch.tensor([compute() if self.is_main else 0.0], dtype=torch.float64, device=self.device)
        dist.broadcast(value, src=0)
        return float(value)

    def check_same(self, value: int, what: str, advice: str) -> None:
        """ValueError on every process unless every process has the same `value` (`what` it is, and `advice`)."""
        if not self.distributed:
            return
        values = torch.tensor([value, -value], dtype=torch.int64, device=self.device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)  # the largest and (negated) the smallest value
        if int(values[0]) != -int(values[1]):
            raise ValueError(f"the {self.world_size} training processes disagree on {what} (from "
                             f"{-int(values[1])} to {int(values[0])}): {advice}")


def synchronise_batch_norm(model: nn.Module, device: torch.device) -> None:
    """Every BatchNorm layer below `model` replaced, in place, by one that normalises over the global batch (with
    the same parameters and buffers)."""
    for name, child in model.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            cuda = device.type == "cuda"
            setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(child) if cuda
                    else CpuSyncBatchNorm.replacing(child))
        else:
            synchronise_batch_norm(child, device)


class _SumOverProcesses(torch.autograd.Function):
    """all_reduce(SUM) with its gradient: each process's input reaches every process's output."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """SyncBatchNorm for CPU processes (gloo): in training, the batch statistics over every process's examples, as
    BatchNorm over the global batch computes them; in eval mode, plain BatchNorm."""

    @classmethod
    def replacing(cls, norm: nn.modules.batchnorm._BatchNorm) -> "CpuSyncBatchNorm":
        synced = cls(norm.num_features, norm.eps, norm.momentum, norm.affine, norm.track_running_stats)
        synced.weight, synced.bias = norm.weight, norm.bias
        synced.running_mean, synced.running_var = norm.running_mean, norm.running_var
        synced.num_batches_tracked = norm.num_batches_tracked
        return synced.train(norm.training)

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        dims, shape = [0, *range(2, input.dim())], [1, -1] + [1] * (input.dim() - 2)
        x = input.float()  # statistics in float32 whatever autocast made the input (a no-op for float32)
        count = _SumOverProcesses.apply(torch.tensor(float(x.numel() // x.size(1))))
        mean = _SumOverProcesses.apply(x.sum(dims)) / count
        centred = x - mean.view(shape)
        variance = _SumOverProcesses.apply(centred.square().sum(dims)) / count  # two passes, as BatchNorm's
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean, factor)
                self.running_var.lerp_(variance * count / (count - 1), factor)  # unbiased, as BatchNorm keeps it
        out = centred * torch.rsqrt(variance + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(input.dtype)


def processes_wanted(setting: int | str, device: torch.device) -> int:
    """How many training processes `train.processes` asks for on this host: `auto` is one per visible CUDA GPU
    when training on CUDA, one otherwise."""
    if setting == "auto":
        return max(1, torch.cuda.device_count()) if device.type == "cuda" else 1
    return int(setting)


def under_torchrun() -> bool:
    """Whether this process is one that torchrun (or another launcher setting WORLD_SIZE) started."""
    return "WORLD_SIZE" in os.environ


def run_under_torchrun(processes: int, module: str, args: list[str]) -> int:
    """Run `python -m module args` as `processes` processes on this host under torchrun (standalone rendezvous);
    returns its exit status. Every process gets this environment (so the same params, the same tracking store)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", module, *args]
    print(f"starting {processes} training processes: torchrun --standalone --nproc_per_node={processes} "
          f"-m {module} {' '.join(args)}", flush=True)
    return subprocess.run(command, check=False).returncode


@contextlib.contextmanager
def torchrun_processes(device: torch.device) -> Iterator[Processes]:
    """The processes torchrun started (from its WORLD_SIZE, RANK and LOCAL_RANK), in a process group for the
    duration: gloo for a CPU `device`, nccl for CUDA, where each process trains on GPU LOCAL_RANK. A single
    process without them (or WORLD_SIZE=1), on `device` as it is."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        yield Processes(device=device)
        return
    try:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    except (KeyError, ValueError):
        raise ValueError(f"WORLD_SIZE={world_size} needs RANK and LOCAL_RANK too: start the processes with "
                         "torchrun") from None
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    try:
        yield Processes(rank=rank, world_size=world_size, device=device)
        # Every process's collectives are complete before the group goes: a process whose last one is still queued
        # when the group is destroyed waits on it for good once its peer has exited (seen with gloo at exit).
        dist.barrier()
    finally:
        dist.destroy_process_group()
