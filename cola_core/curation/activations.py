"""Pooled layer activations of text samples: the coordinates of COLA's activation space.

COLA (He et al., NeurIPS 2025, §5) represents each calibration candidate by the model's layer
activations. We hook decoder-layer outputs (and optionally the MLP's intermediate "neuron
activation patterns"), pool over real tokens only (mean or last token; padding never leaks in), and
stop the forward pass after the deepest requested layer. Batches are bucketed by length under a
token budget, so short samples are not padded to the longest one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cola_core.curation.processing import ProcessingConfig
from cola_core.errors import ColaError
from cola_core.models.architecture import (
    decoder_layers,
    fused_experts,
    hidden_of,
    input_device,
    mlp_output_projection,
)
from cola_core.models.batching import BATCH_TOKENS, length_batches
from cola_core.models.chat import encode
from cola_core.settings import setting

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ActivationConfig:
    """What to extract. ``layers=None`` means every decoder layer; negative indices count from the end."""

    layers: tuple[int, ...] | None = setting(
        None, "comma-separated layer indices (default: all; negative counts from the end)"
    )
    pooling: str = setting("mean", "mean or last", choices=("mean", "last"))
    include_mlp: bool = setting(False, "also use MLP intermediate activations")
    expert_features: bool = setting(
        False, "mixture-of-experts: also place samples by which experts their tokens are routed to (per layer)"
    )
    # the pipeline passes Stage 2's (CurateConfig.extraction): not a setting of its own there
    seqlen: int = setting(ProcessingConfig.seqlen, "tokens per sample", flat=False)
    batch_tokens: int = setting(BATCH_TOKENS, "activation extraction: tokens per forward batch")

    def resolve_layers(self, n_layers: int) -> tuple[int, ...]:
        if self.pooling not in ("mean", "last"):
            raise ColaError(f"unknown pooling '{self.pooling}': use mean or last")
        if self.seqlen <= 0:
            raise ColaError(f"sequence length must be positive, got {self.seqlen}")
        chosen = range(n_layers) if self.layers is None else self.layers
        resolved = []
        for i in chosen:
            if not -n_layers <= i < n_layers:
                raise ColaError(f"layer {i} does not exist: the model has layers 0..{n_layers - 1}")
            resolved.append(i % n_layers)
        return tuple(sorted(set(resolved)))


class _StopForward(Exception):
    """Raised by the hook on the deepest requested layer: nothing after it needs computing."""


def _pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    hidden = hidden.float()
    if hidden.dim() == 2:  # OPT flattens (batch, seq) inside its MLP
        hidden = hidden.reshape(*mask.shape, -1)
    if pooling == "last":
        last = mask.sum(1).long() - 1  # right padding: the last real token of each row
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


def tokenize_samples(tokenizer, texts: Sequence[str], seqlen: int) -> list[list[int]]:
    """Token ids of each text, truncated to ``seqlen`` (the first step of extraction)."""
    return encode(tokenizer, list(texts), truncation=True, max_length=seqlen)


def extract_activations(
    model: torch.nn.Module,
    tokenizer,
    texts: Sequence[str],
    config: ActivationConfig = ActivationConfig(),
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Pooled activations ``{"layer{i}": (n, hidden), "mlp{i}": (n, intermediate)}`` in input order; for
    a mixture-of-experts layer also ``"experts{i}"``: (n, experts), the real tokens of each sample the
    router sends to each expert (top-k: a token counts once for each of its k experts)."""
    if not texts:
        raise ColaError("no samples to extract activations from")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return extract_from_ids(model, tokenize_samples(tokenizer, texts, config.seqlen), pad, config, progress)


@torch.inference_mode()
def extract_from_ids(
    model: torch.nn.Module,
    ids: Sequence[Sequence[int]],
    pad: int,
    config: ActivationConfig = ActivationConfig(),
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """:func:`extract_activations` on token ids already cut to ``config.seqlen`` (the Ray workers' entry)."""
    if not ids:
        raise ColaError("no samples to extract activations from")
    lengths = [len(x) for x in ids]
    layers = decoder_layers(model)
    wanted = config.resolve_layers(len(layers))
    device = input_device(model)
    out: dict[str, np.ndarray] = {}
    captured: dict[str, torch.Tensor] = {}
    state: dict[str, torch.Tensor] = {}

    def on_layer(i: int):
        def hook(_module, _args, output):
            captured[f"layer{i}"] = _pool(hidden_of(output), state["mask"], config.pooling)
            if i == wanted[-1]:  # the MLP pre-hooks of this layer have already fired
                raise _StopForward

        return hook

    def on_mlp(i: int):
        def hook(_module, args):
            captured[f"mlp{i}"] = _pool(args[0], state["mask"], config.pooling)

        return hook

    def on_experts(i: int, n_experts: int):
        def hook(_module, args, kwargs):  # the experts' call: (tokens, top-k expert ids, weights)
            given = [*args[1:], *kwargs.values()]  # the expert ids: the call's integer tensor
            chosen = next(v for v in given if isinstance(v, torch.Tensor) and not v.is_floating_point())
            real = state["mask"].reshape(-1).bool().to(chosen.device)
            hits = torch.nn.functional.one_hot(chosen[real].long(), n_experts).sum(1)  # (real tokens, E)
            lengths = state["mask"].sum(1).to(real.device)
            rows = torch.repeat_interleave(torch.arange(len(state["mask"]), device=real.device), lengths)
            counts = torch.zeros(len(state["mask"]), n_experts, device=real.device).index_add_(0, rows, hits.float())
            captured[f"experts{i}"] = counts  # real tokens each sample sends to each expert

        return hook

    handles = [layers[i].register_forward_hook(on_layer(i)) for i in wanted]
    for i in wanted:  # a mixture-of-experts layer: the experts each sample's tokens go to
        for module in fused_experts(layers[i]).values():
            n_experts = next(t.shape[0] for t in module.parameters() if t.dim() == 3)
            handles.append(module.register_forward_pre_hook(on_experts(i, n_experts), with_kwargs=True))
    if config.include_mlp:
        handles += [mlp_output_projection(layers[i]).register_forward_pre_hook(on_mlp(i)) for i in wanted]
    try:
        done = 0
        for batch in length_batches(lengths, config.batch_tokens):
            width = max(lengths[i] for i in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                input_ids[row, : lengths[i]] = torch.tensor(ids[i])
                mask[row, : lengths[i]] = 1
            state["mask"] = mask.to(device)
            captured.clear()
            with contextlib.suppress(_StopForward):
                model(input_ids=input_ids.to(device), attention_mask=state["mask"], use_cache=False)
            for key, value in captured.items():
                if not torch.isfinite(value).all():
                    raise ColaError(f"the model produced NaN/inf activations at {key}; check the weights and dtype")
                arr = out.setdefault(key, np.empty((len(ids), value.shape[-1]), dtype=np.float32))
                arr[batch] = value.cpu().numpy()
            done += len(batch)
            if progress:
                progress(done, len(ids))
    finally:
        for h in handles:
            h.remove()
    return out


def activations_key(model_fingerprint: str, texts: Sequence[str], config: ActivationConfig, dtype: str) -> str:
    """The cache key of a model × samples × settings extraction; every engine reads and writes it.
    The weights' dtype (``"float32"``, ``"bfloat16"`` …) is part of it; the batch budget is not: it
    changes how the forwards are cut, not what they compute."""
    from dataclasses import asdict

    from cola_core.storage.cache_store import cache_key
    from cola_core.storage.fingerprints import pool_fingerprint

    settings = {k: v for k, v in asdict(config).items() if k != "batch_tokens"}
    return cache_key(model=model_fingerprint, samples=pool_fingerprint(texts), config=settings, dtype=dtype, v=1)


def cached_activations(
    model: torch.nn.Module,
    tokenizer,
    model_fingerprint: str,
    texts: Sequence[str],
    config: ActivationConfig = ActivationConfig(),
    progress: Progress | None = None,
    dtype: str | None = None,
) -> dict[str, np.ndarray]:
    """:func:`extract_activations` through the disk cache, keyed by model, weights' dtype (``dtype``,
    else the model's own), samples and settings; a hit never touches the model."""
    from dataclasses import asdict

    from cola_core.storage.cache_store import load_entry, save_entry

    dtype = dtype or str(next(model.parameters()).dtype).removeprefix("torch.")
    key = activations_key(model_fingerprint, texts, config, dtype)
    hit = load_entry("activations", key)
    if hit is not None:
        if progress:
            progress(len(texts), len(texts))
        return hit[0]
    acts = extract_activations(model, tokenizer, texts, config, progress)
    save_entry("activations", key, acts, {"n": len(texts), "config": asdict(config)})
    return acts
