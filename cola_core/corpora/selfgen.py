"""Self-generated calibration data (Ji et al., ICLR 2025): sample texts from the model itself, drop
the worst fraction by the model's own perplexity, and use them as a corpus like any other.

Useful when the model's training data is unknown: the model's own samples lie in the region of
activation space it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from cola_core.corpora import Record
from cola_core.corpora.quality import drop_worst, score_perplexity
from cola_core.errors import ColaError
from cola_core.models.architecture import input_device


@dataclass(frozen=True)
class SelfGenConfig:
    n: int = 200
    max_new_tokens: int = 128
    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 0.95
    repetition_penalty: float = 1.1
    prefixes: tuple[str, ...] = ("",)  # seed prefixes, cycled; "" starts from BOS alone
    drop_worst_perplexity: float = 0.1
    batch_size: int = 32
    seed: int = 0

    def validate(self) -> None:
        if self.n <= 0 or self.max_new_tokens <= 0:
            raise ColaError("self-generation needs n > 0 and max_new_tokens > 0")
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ColaError("sampling needs temperature > 0, top_p in (0, 1] and top_k ≥ 0")
        if not 0 <= self.drop_worst_perplexity < 1:
            raise ColaError(f"the perplexity drop fraction must lie in [0, 1), got {self.drop_worst_perplexity}")


@torch.inference_mode()
def generate_self_corpus(model, tokenizer, config: SelfGenConfig = SelfGenConfig(), name: str = "self") -> list[Record]:
    """Sample ``config.n`` texts, score them, and keep all but the worst-perplexity fraction."""
    config.validate()
    torch.manual_seed(config.seed)
    device = input_device(model)
    texts: list[tuple[str, str]] = []
    while len(texts) < config.n:
        prefixes = [
            config.prefixes[(len(texts) + i) % len(config.prefixes)]
            for i in range(min(config.batch_size, config.n - len(texts)))
        ]
        # padding_side per call: the tokenizer is shared (dashboard sessions, job thread), never mutated
        enc = tokenizer(prefixes, return_tensors="pt", padding=True, padding_side="left").to(device)
        out = model.generate(
            **enc,
            do_sample=True,
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            top_k=config.top_k,
            top_p=config.top_p,
            repetition_penalty=config.repetition_penalty,
            pad_token_id=tokenizer.pad_token_id,
        )
        for prefix, row in zip(prefixes, tokenizer.batch_decode(out, skip_special_tokens=True), strict=True):
            texts.append((prefix, row))
    records = [Record(f"{name}/{i:06d}", t, name, "self", {"prefix": p}) for i, (p, t) in enumerate(texts) if t.strip()]
    if not records:
        raise ColaError("the model generated only empty texts; try other prefixes or a higher temperature")
    scored = score_perplexity(records, model, tokenizer, seqlen=config.max_new_tokens + 64)
    return drop_worst(scored, config.drop_worst_perplexity)


def write_self_corpus(records: list[Record], path: str | Path) -> Path:
    from cola_core.corpora.jsonl import save_jsonl

    return save_jsonl(records, path)


def cached_self_corpus(loaded, config: SelfGenConfig = SelfGenConfig()) -> Path:
    """The self-generated corpus of a model and settings as a .jsonl under ``cache/selfgen/``, made once."""
    import hashlib
    import json
    from dataclasses import asdict

    from cola_core.paths import cache_root

    key = hashlib.sha256(json.dumps([loaded.fingerprint, asdict(config)], sort_keys=True).encode()).hexdigest()[:12]
    path = cache_root() / "selfgen" / f"self-{key}.jsonl"
    if not path.exists():  # save_jsonl writes atomically: a half-written file never appears
        write_self_corpus(generate_self_corpus(loaded.model, loaded.tokenizer, config, name="self"), path)
    return path
