"""Built-in `prose` and `code` corpora, generated from the running Python's standard library.

`prose` is documentation English: module/class/function docstrings and the pydoc topics.
`code` is Python source: the functions and methods of the standard library.
Both are split by module (or topic) name with :func:`split_of`, so a module's docstrings and its
code land in the same split and no held-out text appears in train or pool.
Sources are parsed with :mod:`ast`, never imported, so generation has no side effects.
"""

from __future__ import annotations

import ast
import functools
import os
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path

from cola_core.corpora.records import SPLITS, Record, split_of

_SKIP_DIRS = {
    "test",
    "tests",
    "idlelib",
    "lib2to3",
    "site-packages",
    "__pycache__",
    "turtledemo",
    "tkinter",
    "ensurepip",
    "lib-dynload",
    "pydoc_data",
}
_MIN_CHARS, _MAX_CHARS = 60, 1500


def _stdlib_files() -> list[tuple[str, Path]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("config-"))
        for name in sorted(files):
            if name.endswith(".py"):
                path = Path(dirpath) / name
                module = ".".join(path.relative_to(root).with_suffix("").parts)
                found.append((module.removesuffix(".__init__"), path))
    return found


def _chunk(text: str) -> list[str]:
    """Split on blank lines and regroup paragraphs into chunks of at most _MAX_CHARS."""
    chunks, current = [], ""
    for para in (p.strip() for p in text.split("\n\n")):
        if not para:
            continue
        if current and len(current) + len(para) + 2 > _MAX_CHARS:
            chunks.append(current)
            current = ""
        current = f"{current}\n\n{para}" if current else para[:_MAX_CHARS]
    if current:
        chunks.append(current)
    return [c for c in chunks if len(c) >= _MIN_CHARS]


def _parsed_files() -> Iterator[tuple[str, list[str], ast.Module]]:
    for module, path in _stdlib_files():
        try:
            source = path.read_text(encoding="utf-8")
            yield module, source.splitlines(keepends=True), ast.parse(source)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue


def _documented_nodes(tree: ast.Module) -> Iterator[tuple[str, ast.AST]]:
    yield "", tree
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name, node


_EARLIER = {"train": (), "pool": ("train",), "probe": ("train", "pool"), "heldout": ("train", "pool", "probe")}


@functools.cache
def _seen_before(kind: str, split: str) -> frozenset[str]:
    """Texts of the earlier splits. The standard library repeats itself (the same docstring or
    method in two modules), so a split by module alone would let such a text into two splits; a
    repeated text stays in the earliest split (train, then pool) and leaves the later ones."""
    return frozenset(text for earlier in _EARLIER[split] for _, text in _stdlib_texts()[kind, earlier])


def _generate(kind: str, split: str) -> Iterator[Record]:
    seen = _seen_before(kind, split)
    n = 0
    for source, text in _stdlib_texts()[kind, split]:
        if text not in seen:
            yield Record(f"{kind}/{split}/{n:06d}", text, kind, kind, {"source": source})
            n += 1


def generate_prose(split: str) -> Iterator[Record]:
    """Docstrings of the standard library and the pydoc topics, chunked into paragraphs."""
    return _generate("prose", split)


def generate_code(split: str) -> Iterator[Record]:
    """Function and method sources of the standard library, dedented, 60–1,500 characters."""
    return _generate("code", split)


def _module_prose(module: str, tree: ast.Module) -> list[tuple[str, str]]:
    found = []
    for name, node in _documented_nodes(tree):
        for chunk in _chunk(ast.get_docstring(node, clean=True) or ""):
            found.append((f"{module}:{name}" if name else f"{module}:", chunk))
    return found


def _module_code(module: str, lines: list[str], tree: ast.Module) -> list[tuple[str, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # Slicing lines is O(function); ast.get_source_segment re-splits the file every call.
            code = textwrap.dedent("".join(lines[node.lineno - 1 : node.end_lineno])).strip("\n")
            if _MIN_CHARS <= len(code) <= _MAX_CHARS:
                found.append((f"{module}:{node.name}", code))
    return found


_TEXTS_VERSION = 2  # bump when the extraction below changes


@functools.cache
def _stdlib_texts() -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
    """(kind, split) → ((source, text), …), once per process, from a JSON file under ``cache/corpora``
    keyed by the exact Python build (parsing the whole standard library takes ~20 s on 2 cores).
    Only strings are kept: a cached AST of the whole standard library is millions of objects that
    every full garbage collection walks (Streamlit collects after every script run, which starved
    the dashboard's job thread)."""
    import hashlib
    import json
    import sys

    from cola_core.paths import cache_root
    from cola_core.storage.atomic import atomic_write_text

    tag = hashlib.sha256(f"{sys.version}|{sys.executable}|{_TEXTS_VERSION}".encode()).hexdigest()[:16]
    path = cache_root() / "corpora" / f"stdlib-{tag}.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        return {tuple(k.split("|")): tuple(map(tuple, v)) for k, v in stored.items()}  # type: ignore[misc]
    except (OSError, ValueError, AttributeError):
        pass  # absent or unreadable: rebuild
    texts = _parse_stdlib_texts()
    atomic_write_text(path, json.dumps({"|".join(k): v for k, v in texts.items()}))
    return texts


def _parse_stdlib_texts() -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
    from pydoc_data.topics import topics

    out: dict[tuple[str, str], list[tuple[str, str]]] = {(k, s): [] for k in ("prose", "code") for s in SPLITS}
    for module, lines, tree in _parsed_files():
        split = split_of(f"stdlib:{module}")
        out["prose", split] += _module_prose(module, tree)
        out["code", split] += _module_code(module, lines, tree)
    for topic in sorted(topics):
        out["prose", split_of(f"topic:{topic}")] += [(f"topic:{topic}", c) for c in _chunk(topics[topic])]
    return {key: tuple(v) for key, v in out.items()}
