import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cola_core.storage.cache_store import cache_key, entry_dir, load_entry, save_entry

WRITER = """
import sys, numpy as np
from pathlib import Path
from cola_core.storage.cache_store import save_entry
root = Path(sys.argv[1])
for i in range(10_000):
    save_entry("acts", f"k{i % 5}-{i}", {"x": np.full((1500, 400), i, dtype=np.float32)}, {"i": i}, root=root)
"""


def test_roundtrip_is_memory_mapped(tmp_path):
    arrays = {"layer0": np.arange(12, dtype=np.float32).reshape(3, 4), "ids": np.array([3, 1, 2])}
    save_entry("acts", "abc", arrays, {"note": "hi"}, root=tmp_path)
    loaded, meta = load_entry("acts", "abc", root=tmp_path)
    assert meta == {"note": "hi"}
    assert isinstance(loaded["layer0"], np.memmap) and not loaded["layer0"].flags.writeable
    for k, v in arrays.items():
        np.testing.assert_array_equal(loaded[k], v)


def test_missing_and_corrupt_entries_are_misses(tmp_path):
    assert load_entry("acts", "nope", root=tmp_path) is None
    save_entry("acts", "bad", {"x": np.ones((10, 10), dtype=np.float32)}, root=tmp_path)
    data = entry_dir("acts", "bad", tmp_path) / "arrays.safetensors"
    data.write_bytes(data.read_bytes()[:-7])
    assert load_entry("acts", "bad", root=tmp_path) is None
    assert not entry_dir("acts", "bad", tmp_path).exists()  # dropped so it is recomputed


def test_cache_key_is_stable_and_sensitive():
    assert cache_key(a=1, b=[1, 2]) == cache_key(b=[1, 2], a=1)
    assert cache_key(a=1) != cache_key(a=2)


@pytest.mark.slow
def test_kill_during_writes_never_leaves_a_readable_half_entry(tmp_path):
    rng = np.random.default_rng(0)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for _ in range(10):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], env=env)
        time.sleep(1.0 + rng.uniform(0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    entries = [p for p in (tmp_path / "acts").iterdir() if not p.name.startswith(".tmp-")]
    assert entries, "the writer never finished an entry; the test proved nothing"
    for entry in entries:
        hit = load_entry("acts", entry.name, root=tmp_path)
        assert hit is not None, f"a completed entry {entry.name} did not verify"
        arrays, meta = hit
        assert arrays["x"].shape == (1500, 400) and np.all(arrays["x"] == meta["i"])
