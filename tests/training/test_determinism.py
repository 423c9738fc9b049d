"""What training results depend on, and the settings that pin it (hushkit.training.determinism).

The guarantee, checked by test_pinned_training_is_bit_identical_whatever_the_cores_and_instruction_set: the same
code, params and data, the same library builds (torch with its MKL and oneDNN, numpy), and the same `threads` and
`cpu_isa` give bit-identical weights, whatever the machine's own default thread count, and whatever instruction
set above `cpu_isa` its CPU offers (emulated here: one CPU, its libraries capped as on a CPU without AVX-512)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from hushkit.training import determinism
from tests.conftest import ROOT

AVX2_ONLY_CPU = "ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2"
needs_avx512 = pytest.mark.skipif("avx512f" not in determinism.cpu_isa_flags(),
                                  reason="emulates a CPU without AVX-512 on one that has it")


def weights(*settings: str) -> dict[str, dict[str, str]]:
    """{setting name: {architecture: sha256 of its weights}} after two training steps of each architecture with
    its params.yaml model (benchmarks/determinism.py: one fresh process per setting)."""
    command = [sys.executable, str(ROOT / "benchmarks" / "determinism.py"), "--json", "--steps", "2", "--batch", "2"]
    done = subprocess.run([*command, *(x for s in settings for x in ("--setting", s))], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@needs_avx512
def test_pinned_training_is_bit_identical_whatever_the_cores_and_instruction_set():
    found = weights("1-core machine=1 pin=avx2", f"AVX2-only 2-core machine=2 {AVX2_ONLY_CPU} pin=avx2",
                    "1-core machine, unpinned=1")
    pinned, other_machine, unpinned = found.values()
    assert pinned == other_machine
    # The comparison can fail: left to itself, the machine's own choice changes the weights.
    assert [arch for arch in pinned if pinned[arch] != unpinned[arch]]


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="cpu_isa must be one of"):
        determinism.pin_cpu(None, "sse")
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        determinism.pin_cpu(0)
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        determinism.pin_cpu(True)


def test_a_level_the_cpu_lacks_is_refused(monkeypatch):
    monkeypatch.setattr(determinism, "cpu_isa_flags", lambda: ["sse4_2", "avx", "avx2", "fma"])
    with pytest.raises(ValueError, match="this CPU has no avx512f"):
        determinism.pin_cpu(2, "avx512")


@needs_avx512
def test_a_cap_set_after_the_first_tensor_operation_is_refused_and_undone():
    import os

    torch.ones(3).sum()   # this test process has long chosen its kernels
    before = {name: os.environ.get(name) for name in determinism.ISA_VARIABLES}
    with pytest.raises(ValueError, match="already runs avx512 kernels"):
        determinism.pin_cpu(2, "avx2")
    assert {name: os.environ.get(name) for name in determinism.ISA_VARIABLES} == before


def test_the_environment_names_cpu_threads_and_library_builds():
    machine = determinism.environment()
    assert all(isinstance(value, str) and value for value in machine.values())
    assert machine["threads"] == str(torch.get_num_threads()) and machine["torch"] == torch.__version__
    assert {"cpu.model", "cpu.isa_flags", "cpu.caches", "mkl", "onednn", "numpy", "var.ONEDNN_MAX_CPU_ISA"} <= set(
        machine)
