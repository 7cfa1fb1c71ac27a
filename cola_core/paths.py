"""Where COLA Studio keeps things on disk: the repository, the built-in models and the cache root."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
ZOO_DIR = PACKAGE_DIR / "zoo"


def cache_root() -> Path:
    """The runtime cache directory: ``$COLA_CACHE_DIR`` if set, else ``<repo>/cache``."""
    root = Path(os.environ.get("COLA_CACHE_DIR", REPO_DIR / "cache"))
    root.mkdir(parents=True, exist_ok=True)
    return root
