"""What the machine can compute fast: bf16 on this CPU, and the precision a GPU should train in."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU computes in bf16 natively (x86 avx512_bf16 or amx_bf16, ARM bf16); Linux only."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    flags = set(" ".join(line.split(":", 1)[1] for line in cpuinfo.splitlines()
                         if line.startswith(("flags", "Features")) and ":" in line).split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def warn_if_precision_is_emulated(mixed_precision: str, accelerator) -> None:
    """bf16 on a CPU without bf16 instructions is emulated: often a hundred times slower than fp32."""
    if mixed_precision == "bf16" and accelerator.device.type == "cpu" and not cpu_has_native_bf16():
        warnings.warn("--mixed-precision bf16 on this CPU is emulated (no avx512_bf16 or amx_bf16 "
                      "in its flags), so training will be far slower than in fp32: use --mixed-precision no",
                      stacklevel=3)


def gpu_precision() -> str:
    """bf16 on GPUs that have it natively (Ampere and newer), fp16 on older ones (a T4), fp32 without one."""
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
