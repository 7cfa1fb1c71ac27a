"""Records from any Hugging Face dataset through `datasets`, streaming, offline from the local cache.

Spec: ``hf:NAME[:CONFIG[:SPLIT]]``. When the hub is unreachable, `datasets` reads its local cache
(set ``HF_DATASETS_OFFLINE=1`` to skip the network); if the data is in neither, one clear error.
NAME may also be a folder written by ``save_to_disk`` (the tool's own ``calib.hf`` included), read
with ``load_from_disk``; ``hf:parquet`` and the other file-format builders without files are refused
(`datasets` would scan the current folder).
Every record's ``meta`` has ``source`` (the spec) and ``row`` (0-based position in the split).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from cola_core.corpora.fields import Fields, as_fields, qa_of_row
from cola_core.corpora.records import Record
from cola_core.errors import ColaError


def parse_hf_spec(spec: str) -> tuple[str, str | None, str]:
    parts = spec.removeprefix("hf:").split(":")
    if not parts[0] or len(parts) > 3:
        raise ColaError(f"bad dataset spec '{spec}': use hf:NAME[:CONFIG[:SPLIT]]")
    name = parts[0]
    config = parts[1] if len(parts) > 1 and parts[1] else None
    split = parts[2] if len(parts) > 2 and parts[2] else "train"
    return name, config, split


FILE_BUILDERS = ("parquet", "json", "csv", "text", "arrow", "pandas", "webdataset", "imagefolder", "audiofolder")


def is_saved_dataset(path: str | Path) -> bool:
    """A folder ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk`` wrote."""
    path = Path(path)
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def _saved_rows(path: str, split: str, explicit: bool) -> Iterable[dict]:
    import datasets

    try:
        saved = datasets.load_from_disk(path)
    except Exception as exc:
        raise ColaError(f"{path} could not be read as a saved dataset ({type(exc).__name__}: {exc})") from None
    if isinstance(saved, datasets.DatasetDict):
        if split in saved:
            return saved[split]
        if not explicit and len(saved) == 1:
            return next(iter(saved.values()))
        raise ColaError(f"{path} has no split '{split}' (splits: {', '.join(saved)}); use hf:{path}::SPLIT")
    return saved


def load_hf_records(
    spec: str, text_field: str = "text", limit: int | None = None, fields: Fields | str | None = None
) -> Iterator[Record]:
    """Stream records of a hub dataset; ``limit`` stops early so large datasets stay cheap. With
    ``fields`` (a question/answer mapping) each row becomes a Q&A record and ``text_field`` is unused."""
    import datasets

    name, config, split = parse_hf_spec(spec)
    mapping = as_fields(fields)
    if name in FILE_BUILDERS and config is None:
        raise ColaError(
            f"hf:{name} is a file format, not a dataset: give the file itself (--corpora data.{name}) "
            "or a folder saved with save_to_disk"
        )
    try:
        if is_saved_dataset(name):
            stream = _saved_rows(name, split, explicit=len(spec.split(":")) > 3)
        else:
            stream = datasets.load_dataset(name, config, split=split, streaming=True)
    except ColaError:
        raise
    except Exception as exc:  # offline, unknown name, bad config: datasets raises many types
        raise ColaError(
            f"could not load dataset '{name}' (config {config}, split {split}) from the hub or the local "
            f"cache ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); download it "
            "where the hub is reachable or point HF_HOME at a cache that has it"
        ) from None
    corpus = Path(name).stem if is_saved_dataset(name) else name.split("/")[-1]
    n = 0
    for row_index, row in enumerate(stream):
        meta = {"dataset": spec, "source": spec, "row": row_index}
        if mapping is not None:
            text, qa = qa_of_row(row, mapping, f"dataset '{name}' row {row_index}")
            meta.update(qa)
        elif text_field not in row:
            raise ColaError(
                f"dataset '{name}' has no '{text_field}' field (fields: {', '.join(row)}); pass --text-field"
            )
        else:
            text = row[text_field]
        if isinstance(text, str) and text.strip():
            yield Record(f"{corpus}/{n:06d}", text, corpus, "custom", meta)
            n += 1
            if limit is not None and n >= limit:
                return
