"""Running model-generated code (code benchmarks) only on explicit opt-in, in a child process with
limits: wall-clock timeout, address-space and CPU-time caps, a file-size cap, an empty temporary
working directory, an isolated interpreter (``-I``: no user site, no environment paths) and a
minimal environment. The whole process group is killed on timeout.

This confines mistakes (infinite loops, memory bombs, stray files), not a determined attacker: the
child still runs as the current user and can reach the network and the file system. Use a
container or VM for code you have reason to distrust.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    seconds: float = 10.0
    memory_mb: int = 1024
    file_mb: int = 16


@dataclass(frozen=True)
class Outcome:
    passed: bool
    reason: str  # "passed", "failed: …", "timeout", "crashed: …"


def _limit(limits: Limits):
    def apply() -> None:
        import resource

        mem = limits.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        cpu = int(limits.seconds) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        size = limits.file_mb * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_untrusted(program: str, limits: Limits | None = None) -> Outcome:
    """Run ``program`` (Python source) in a limited child process; passed = exit status 0."""
    limits = limits or Limits()
    with tempfile.TemporaryDirectory(prefix="cola-exec-") as work:
        path = os.path.join(work, "program.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(program)
        env = {"PATH": "/usr/bin:/bin", "HOME": work, "TMPDIR": work, "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-I", path],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_limit(limits),
        )
        try:
            _, err = proc.communicate(timeout=limits.seconds)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return Outcome(False, "timeout")
        with contextlib.suppress(ProcessLookupError):  # anything the program left running in its group
            os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode == 0:
        return Outcome(True, "passed")
    last = (err.decode("utf-8", "replace").strip().splitlines() or [""])[-1][:200]
    if proc.returncode < 0:
        return Outcome(False, f"crashed: signal {-proc.returncode}")
    return Outcome(False, f"failed: {last}")
