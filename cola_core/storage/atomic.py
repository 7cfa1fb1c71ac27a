"""The one way files are written: to a temporary sibling, flushed and fsynced, then renamed into place,
so a reader never sees half a file and a crash leaves the old one (or none)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cola_core.errors import ColaError

_UMASK = os.umask(0)  # read once, at import (umask has no getter); put back at once
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what open() gives a new file: every output gets it, whoever wrote it


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to fill a temporary sibling of ``path``, fsync it, then rename it over
    ``path``. The temporary name carries the pid, so concurrent writers never share one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)  # a writer may create 0600 (safetensors does): outputs read like any file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def check_output(path: str | Path, what: str, folder: bool = False) -> Path:
    """Fail before any work when ``path`` cannot become the output: a file where a folder is wanted or
    the reverse, a file among its parents, or a nearest existing parent that is not writable — one
    ColaError naming the path and the fix, nothing written (issue #32)."""
    path = Path(path)
    kind = "folder" if folder else "file"
    if path.exists() and path.is_dir() != folder:
        found = "a folder" if path.is_dir() else "a file"
        raise ColaError(f"cannot write the {what} to {path}: it is {found}; give a {kind} path")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ColaError(f"cannot write the {what} to {path}: {parent} is a file, not a folder")
    target = path if path.exists() else parent
    if target is not None and not os.access(target, os.W_OK):
        raise ColaError(f"cannot write the {what} to {path}: {target} is not writable; give another --out")
    return path
