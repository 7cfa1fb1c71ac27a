"""Records from any Hugging Face dataset through `datasets`, streaming, offline from the local cache.

Spec: ``hf:NAME[:CONFIG[:SPLIT]]``. When the hub is unreachable, `datasets` reads its local cache
(set ``HF_DATASETS_OFFLINE=1`` to skip the network); if the data is in neither, one clear error.
Every record's ``meta`` has ``source`` (the spec) and ``row`` (0-based position in the split).
"""

from __future__ import annotations

from collections.abc import Iterator

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


def load_hf_records(
    spec: str, text_field: str = "text", limit: int | None = None, fields: Fields | str | None = None
) -> Iterator[Record]:
    """Stream records of a hub dataset; ``limit`` stops early so large datasets stay cheap. With
    ``fields`` (a question/answer mapping) each row becomes a Q&A record and ``text_field`` is unused."""
    import datasets

    name, config, split = parse_hf_spec(spec)
    mapping = as_fields(fields)
    try:
        stream = datasets.load_dataset(name, config, split=split, streaming=True)
    except Exception as exc:  # offline, unknown name, bad config: datasets raises many types
        raise ColaError(
            f"could not load dataset '{name}' (config {config}, split {split}) from the hub or the local "
            f"cache ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); download it "
            "where the hub is reachable or point HF_HOME at a cache that has it"
        ) from None
    corpus = name.split("/")[-1]
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
