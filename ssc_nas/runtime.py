"""Process-wide facts and settings of this machine: allocator tuning (keep freed large tensors
in the heap instead of the kernel) and whether the CPU computes bfloat16 natively.

With glibc's default malloc, a tensor of more than a few MB comes from a fresh ``mmap`` and
goes back to the kernel when freed (as does the top of the heap past the trim threshold), so a
training step that frees and reallocates its 16-32 MB convolution outputs page-faults them in
again every step. :func:`tune_malloc` does, through ``mallopt``, what
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<large>`` does in the environment: every block comes
from the heap, and freed memory stays there for the next step. The cost is that the process
keeps its peak heap until it exits.

``SSC_NAS_MALLOC=default`` leaves glibc's defaults alone; a knob the user set with
``MALLOC_MMAP_MAX_``/``MALLOC_TRIM_THRESHOLD_`` (or a ``glibc.malloc`` tunable in
``GLIBC_TUNABLES``) is never overridden. On a C library other than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Mapping
from pathlib import Path

from .errors import SSCNasError

__all__ = ["MALLOC_ENV", "MallocSettingError", "cpu_has_native_bf16", "malloc_state",
           "tune_malloc"]

MALLOC_ENV = "SSC_NAS_MALLOC"
MODES = ("fast", "default")

# glibc's mallopt parameter numbers (malloc.h) and the values the fast mode sets.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: 2 GiB of free heap top before trimming
MALLOC_KNOBS = {
    # mallopt parameter: (value, environment variable, GLIBC_TUNABLES name)
    M_MMAP_MAX: (0, "MALLOC_MMAP_MAX_", "glibc.malloc.mmap_max"),
    M_TRIM_THRESHOLD: (TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold"),
}

_state = "defaults (tune_malloc not called)"


class MallocSettingError(SSCNasError, ValueError):
    """``SSC_NAS_MALLOC`` holds a value other than ``fast`` or ``default``."""


def _user_set(env: Mapping[str, str], variable: str, tunable: str) -> bool:
    """Whether the user chose this malloc knob in the environment."""
    return variable in env or f"{tunable}=" in env.get("GLIBC_TUNABLES", "")


def tune_malloc(env: Mapping[str, str] | None = None) -> str:
    """Apply the fast allocator settings to this process; returns what was done, in words.

    Call it once, as early as possible. Raises :class:`MallocSettingError` for an unknown
    ``SSC_NAS_MALLOC`` value.
    """
    global _state
    env = os.environ if env is None else env
    mode = env.get(MALLOC_ENV, "fast").strip().lower() or "fast"
    if mode not in MODES:
        raise MallocSettingError(f"{MALLOC_ENV} must be one of {', '.join(MODES)}, "
                                 f"but got {env[MALLOC_ENV]!r}")
    if mode == "default":
        _state = f"glibc defaults ({MALLOC_ENV}=default)"
        return _state
    if platform.libc_ver()[0] != "glibc":
        _state = "unchanged (not glibc)"
        return _state
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        _state = "unchanged (no mallopt)"
        return _state
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done, kept = [], []
    for param, (value, variable, tunable) in MALLOC_KNOBS.items():
        if _user_set(env, variable, tunable):
            kept.append(variable)
        elif mallopt(param, value) == 1:
            done.append(f"{variable}={value}")
    _state = "mallopt " + (" ".join(done) or "nothing")
    if kept:
        _state += f" (user's {' '.join(kept)} kept)"
    return _state


def malloc_state() -> str:
    """What the last :func:`tune_malloc` call did (a note saying so before any call)."""
    return _state


#: CPU feature flags (Linux ``/proc/cpuinfo``) of bfloat16 arithmetic in hardware: x86
#: AVX512-BF16 or AMX-BF16, Arm's BF16 extension. oneDNN runs bf16 convolutions with them;
#: without, it emulates bf16 and is slower than float32. With them it can still be slower
#: (an Intel Xeon with AVX512-BF16 but no AMX), so ``train.resolve_amp`` also measures.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 in hardware (False where it cannot be told)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features") and BF16_FLAGS & set(value.split()):
            return True
    return False
