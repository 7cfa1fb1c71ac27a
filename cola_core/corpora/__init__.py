"""Corpora: built-in generated corpora, local files and Hugging Face datasets, as :class:`Record`s.

A corpus spec is a built-in name (``prose``, ``code``, ``math``, ``facts``, ``random``), a path to a
local file (.txt/.jsonl/.json/.csv/.parquet) or ``hf:NAME[:CONFIG[:SPLIT]]``. Built-in corpora have
``train``/``pool``/``probe``/``heldout`` splits (records.py); files and datasets are used whole
whatever the split.

Files and datasets take either a text field or a question/answer field mapping
(:mod:`cola_core.corpora.fields`). With a seed, ``limit`` records of any source are a uniform
sample of the whole split (:mod:`cola_core.corpora.sampling`) rather than its first ones, so a new
seed draws a new pool.
"""

from cola_core.corpora.catalog import BUILTIN_CORPORA, CorpusInfo, list_corpora, load_records
from cola_core.corpora.fields import Fields, parse_fields
from cola_core.corpora.records import SPLITS, Record, split_of
from cola_core.corpora.sampling import describe_sampling, sampling_summary

__all__ = [
    "BUILTIN_CORPORA",
    "SPLITS",
    "CorpusInfo",
    "Fields",
    "Record",
    "describe_sampling",
    "list_corpora",
    "load_records",
    "parse_fields",
    "sampling_summary",
    "split_of",
]
