"""Atomic, verified, memory-mapped disk cache of named arrays (safetensors + a JSON manifest).

An entry is a directory ``<root>/<kind>/<key>/`` holding ``arrays.safetensors`` and
``manifest.json``. It is written in a temporary sibling directory, fsynced, then renamed into place,
so a killed process never leaves a half entry under the final name. A read checks the manifest's
format version, key, file size and BLAKE2b digest; anything that does not verify is removed and recomputed.
Arrays are returned as read-only ``np.memmap`` views of the safetensors file. No pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from cola_core.errors import ColaError
from cola_core.paths import cache_root

FORMAT_VERSION = 2  # 2: the manifest carries a BLAKE2b digest of the arrays file
_DTYPES = {
    "F32": np.float32,
    "F16": np.float16,
    "F64": np.float64,
    "I64": np.int64,
    "I32": np.int32,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def cache_key(**parts: Any) -> str:
    """A stable key from JSON-serialisable parts (fingerprints, settings)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def entry_dir(kind: str, key: str, root: Path | None = None) -> Path:
    return (root or cache_root()) / kind / key


def save_entry(
    kind: str, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None, root: Path | None = None
) -> Path:
    """Write an entry atomically; if another writer got there first, keep theirs."""
    final = entry_dir(kind, key, root)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        tensors = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
        save_file(tensors, str(tmp / "arrays.safetensors"))
        size = (tmp / "arrays.safetensors").stat().st_size
        manifest = {
            "version": FORMAT_VERSION,
            "kind": kind,
            "key": key,
            "bytes": size,
            "blake2b": _digest(tmp / "arrays.safetensors"),
            "meta": meta or {},
        }
        with open(tmp / "manifest.json", "w") as f:
            json.dump(manifest, f)
            f.flush()
            os.fsync(f.fileno())
        with open(tmp / "arrays.safetensors", "rb+") as f:
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        try:
            os.rename(tmp, final)
        except OSError:  # an entry with this key already exists: identical by construction
            shutil.rmtree(tmp, ignore_errors=True)
        _fsync_dir(final.parent)
    except OSError as exc:  # disk full, quota, permissions: nothing half-written stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise ColaError(
            f"could not write the {kind} cache under {final.parent} ({exc.strerror or exc}); free disk space or "
            "point COLA_CACHE_DIR at a disk with room"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _digest(path: Path) -> str:
    """BLAKE2b of a file, read in 8 MiB chunks (about 1 GB/s: cheap next to recomputing activations)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def _memmap_safetensors(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    arrays = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        shape = tuple(entry["shape"])
        if begin == end:
            arrays[name] = np.zeros(shape, dtype=_DTYPES[entry["dtype"]])
            continue
        arrays[name] = np.memmap(path, dtype=_DTYPES[entry["dtype"]], mode="r", offset=8 + n + begin, shape=shape)
    return arrays


def load_entry(kind: str, key: str, root: Path | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The entry's arrays (memory-mapped) and meta, or None when absent or not verifiable."""
    final = entry_dir(kind, key, root)
    if not final.is_dir():
        return None
    try:
        manifest = json.loads((final / "manifest.json").read_text())
        data = final / "arrays.safetensors"
        if manifest["version"] != FORMAT_VERSION or manifest["key"] != key or data.stat().st_size != manifest["bytes"]:
            raise ValueError("manifest does not match")
        if _digest(data) != manifest["blake2b"]:  # flipped bits, a truncated copy, a stray write
            raise ValueError("contents do not match the manifest")
        return _memmap_safetensors(data), manifest["meta"]
    except (OSError, ValueError, KeyError, json.JSONDecodeError, struct.error):
        shutil.rmtree(final, ignore_errors=True)  # corrupt: drop it, the caller recomputes
        return None
