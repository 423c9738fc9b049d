"""What a CPU training result depends on beyond code, params and data; the settings that pin it; the record of it.

Float sums depend on their order, and the CPU libraries under torch choose that order at run time:
  - the thread count: how a reduction (a convolution's weight gradient, a norm's statistics, a sum) is split;
  - the instruction set: the width of the vector lanes a reduction is spread over and the kernels chosen by it
    (oneDNN's JIT convolutions, ATen's vectorised kernels, MKL's BLAS and FFT code paths: AVX-512 or AVX2);
  - the library versions (torch with its oneDNN and MKL builds, numpy) and, within one instruction set, the CPU's
    cache sizes, which oneDNN's kernels block their loops by.

`pin_cpu(threads, isa)` fixes the thread count and caps the three libraries at one instruction-set level, before
the first tensor operation; `environment()` records all of the above, so a difference can be explained.
benchmarks/determinism.py measures which architectures each of these changes.
"""
from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

# cpu_isa level → what each library is told (each reads it when it first runs a kernel, not at import), and the CPU
# flag the level needs.
ISA_LEVELS: dict[str, dict[str, str]] = {
    "native": {},   # whatever this CPU offers: fastest, and results depend on which CPU that is
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"},
    "avx512": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "ATEN_CPU_CAPABILITY": "avx512", "MKL_CBWR": "AVX512"},
}
REQUIRED_FLAG = {"avx2": "avx2", "avx512": "avx512f"}
ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_CBWR")
# The CPU flags that decide which kernels the libraries can pick.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16")


def pin_cpu(threads: int | None, isa: str = "native") -> None:
    """Use `threads` torch threads (None: torch's default, one per core) and cap the CPU kernels at `isa` (a key of
    ISA_LEVELS). Must run before the process's first tensor operation; ValueError when it ran too late, or when
    this CPU lacks that level (its results would silently differ)."""
    import torch

    if isa not in ISA_LEVELS:
        raise ValueError(f"train: cpu_isa must be one of {sorted(ISA_LEVELS)}, got {isa!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"train: threads must be a positive integer (or null: one per core), got {threads!r}")
    if isa != "native" and REQUIRED_FLAG[isa] not in cpu_isa_flags():
        raise ValueError(f"train: cpu_isa {isa}: this CPU has no {REQUIRED_FLAG[isa]} (its flags: "
                         f"{' '.join(cpu_isa_flags()) or 'unknown'}); pick a lower level")
    before = {name: os.environ.get(name) for name in ISA_LEVELS[isa]}
    os.environ.update(ISA_LEVELS[isa])
    wanted = ISA_LEVELS[isa].get("ATEN_CPU_CAPABILITY")
    actual = torch.backends.cpu.get_cpu_capability().lower()
    if wanted is not None and actual != wanted:
        for name, value in before.items():   # a failed pin leaves the environment as it was
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        raise ValueError(f"train: cpu_isa {isa}: torch already runs {actual} kernels in this process (the cap must "
                         "be set before its first tensor operation)")
    if threads is not None:
        torch.set_num_threads(threads)


def cpu_isa_flags() -> list[str]:
    """The ISA_FLAGS this CPU reports, lower case (empty where /proc/cpuinfo is not there)."""
    flags = set(_cpuinfo().get("flags", "").split())
    return [flag for flag in ISA_FLAGS if flag in flags]


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def _cache_sizes() -> str:
    """Per-core cache sizes, e.g. "L1d 48K, L1i 32K, L2 1024K, L3 32768K" (Linux sysfs)."""
    sizes = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = ((index / name).read_text().strip() for name in ("level", "type", "size"))
        except OSError:
            continue
        sizes.append(f"L{level}{ {'Data': 'd', 'Instruction': 'i'}.get(kind, '')} {size}")
    return ", ".join(sizes) or "unknown"


def _build(config: str, pattern: str) -> str:
    found = re.search(pattern, config)
    return found.group(1).strip() if found else "none"


def environment() -> dict[str, str]:
    """Everything besides code, params and data that the trained weights depend on, as strings (MLflow tags and
    checkpoint metadata): the CPU (model, ISA flags, caches), the threads, the kernel caps and the library builds."""
    import numpy
    import torch

    cpu = _cpuinfo()
    config = torch.__config__.show()
    return {
        "cpu.model": cpu.get("model name") or platform.processor() or platform.machine(),
        "cpu.family_model_stepping": "/".join(cpu.get(k, "?") for k in ("cpu family", "model", "stepping")),
        "cpu.isa_flags": " ".join(cpu_isa_flags()) or "unknown",
        "cpu.caches": _cache_sizes(),
        "cpu.logical_cores": str(os.cpu_count()),
        "threads": str(torch.get_num_threads()),
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        **{f"var.{name}": os.environ.get(name, "unset") for name in (*ISA_VARIABLES, "OMP_NUM_THREADS")},
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "mkl": _build(config, r"Math Kernel Library Version ([^\n]+?) for"),
        "onednn": _build(config, r"MKL-DNN (v[\d.]+ \(Git Hash \w+\))"),
        "python": platform.python_version(),
    }
