"""The allocator tuning takes effect in a fresh process, and leaves users' settings alone."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from ssc_nas import runtime
from ssc_nas.runtime import MallocSettingError, cpu_has_native_bf16, tune_malloc

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="needs glibc")

# Allocate, touch and free 64 MB through libc; print resident MB before, during and after.
PROBE = """
import ctypes, sys, types
# ssc_nas.runtime without the package's __init__, which imports torch (2.3 s a process)
package = types.ModuleType("ssc_nas")
package.__path__ = [sys.argv[2]]
sys.modules["ssc_nas"] = package
from ssc_nas.runtime import tune_malloc
if sys.argv[1] == "tune":
    print(tune_malloc())
else:
    print("untouched")
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
n = 64 * 2**20
before = rss_mb()
p = libc.malloc(n)
ctypes.memset(p, 1, n)
during = rss_mb()
libc.free(p)
print(before, during, rss_mb())
"""


def probe(mode: str, **extra: str) -> tuple[str, int, int, int]:
    """Run PROBE in a fresh interpreter with no MALLOC_* variables unless given in ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "SSC_NAS_MALLOC")}
    r = subprocess.run([sys.executable, "-c", PROBE, mode, str(Path(runtime.__file__).parent)],
                       env={**env, **extra},
                       capture_output=True, text=True, timeout=60, check=True)
    state, numbers = r.stdout.strip().splitlines()
    before, during, after = (int(v) for v in numbers.split())
    return state, before, during, after


@glibc
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_freed_memory_stays_in_the_process_only_when_tuned() -> None:
    state, before, during, after = probe("untouched")
    assert during - before >= 60, "the probe's 64 MB did not become resident"
    assert during - after >= 60, "glibc defaults should hand a freed 64 MB block back"
    state, before, during, after = probe("tune")
    assert state.startswith("mallopt MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=")
    assert during - before >= 60
    assert during - after < 4, "tuned malloc should keep the freed block for reuse"


@glibc
def test_opt_out_and_user_settings_are_respected() -> None:
    state, _, during, after = probe("tune", SSC_NAS_MALLOC="default")
    assert state == "glibc defaults (SSC_NAS_MALLOC=default)"
    assert during - after >= 60
    state, _, during, after = probe("tune", MALLOC_TRIM_THRESHOLD_="0")
    assert state == ("mallopt MALLOC_MMAP_MAX_=0 (user's MALLOC_TRIM_THRESHOLD_ kept)")
    assert during - after >= 60, "the user's trim threshold 0 must still trim"


def test_unknown_mode_is_a_user_error() -> None:
    with pytest.raises(MallocSettingError, match="SSC_NAS_MALLOC must be one of fast, default"):
        tune_malloc({"SSC_NAS_MALLOC": "turbo"})


def test_cli_reports_an_unknown_mode_in_one_line() -> None:
    env = {**os.environ, "SSC_NAS_MALLOC": "turbo"}
    r = subprocess.run([sys.executable, "-m", "ssc_nas", "space", "list"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: SSC_NAS_MALLOC must be one of fast, default, but got 'turbo'"]


X86_FLAGS = "fpu vme de pse tsc msr avx2 avx512f avx512bw avx512vl"


@pytest.mark.parametrize(("cpuinfo", "native"), [
    (f"processor\t: 0\nflags\t\t: {X86_FLAGS} avx512_bf16 avx512_vnni\n", True),
    (f"processor\t: 0\nflags\t\t: {X86_FLAGS} amx_bf16 amx_tile\n", True),
    (f"processor\t: 0\nflags\t\t: {X86_FLAGS} avx512_vnni\n", False),  # AVX-512 without BF16
    ("processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 bf16 i8mm\n", True),
    ("processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n", False),
    ("", False),
])
def test_native_bf16_is_read_from_the_cpu_flags(cpuinfo: str, native: bool) -> None:
    assert cpu_has_native_bf16(cpuinfo) is native


def test_native_bf16_of_this_machine_matches_its_flags() -> None:
    if not os.path.exists("/proc/cpuinfo"):
        assert cpu_has_native_bf16() is False
        return
    flags = Path("/proc/cpuinfo").read_text().split()
    assert cpu_has_native_bf16() is any(f in flags for f in ("avx512_bf16", "amx_bf16", "bf16"))
