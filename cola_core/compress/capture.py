"""Capturing what the first decoder layer receives, so layers can be replayed one at a time.

A pre-hook on decoder layer 0 records its hidden-state input and every keyword argument the model
passes (attention mask, position ids, rotary position embeddings, cache flags …) for each calibration
batch, then stops the forward pass. Works for any family whose blocks sit in one ModuleList.

Batches never compute on padding they can do without: sequences are sorted by where their last real
token sits, cut into batches of at most ``batch_tokens`` padded tokens (models/batching.py), and each
batch is cut after its last real token. Right padding is all a causal model lets go without changing
what the real tokens see; left padding stays. (Measured, issue #33: 64 built-in prose texts padded to
128 tokens are 5,101 real tokens of 8,192 — every replay did 1.6× the work.)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import torch

from cola_core.models.architecture import decoder_layers, hidden_of
from cola_core.models.batching import length_batches


class _Captured(Exception):
    pass


@dataclass
class LayerInputs:
    hidden: list[torch.Tensor]  # one (B, T, d) tensor per batch
    kwargs: list[dict[str, Any]]  # the keyword arguments of the layer call, per batch
    masks: list[torch.Tensor]  # (B, T) attention masks: which tokens are real
    rows: list[list[int]] = field(default_factory=list)  # per batch, the calibration row of each sequence


def _move(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, tuple):
        return tuple(_move(v, device) for v in value)
    return value


@contextlib.contextmanager
def non_layer_weights_on(model: torch.nn.Module, device: torch.device):
    """Move everything but the decoder layers (embeddings, rotary tables, final norm) to ``device``."""
    layer_ids = {id(t) for t in (*decoder_layers(model).parameters(), *decoder_layers(model).buffers())}
    moved = [t for t in (*model.parameters(), *model.buffers()) if id(t) not in layer_ids]
    homes = [t.device for t in moved]
    for t in moved:
        t.data = t.data.to(device)
    try:
        yield
    finally:
        for t, home in zip(moved, homes, strict=True):
            t.data = t.data.to(home)


def _extents(attention_mask: torch.Tensor) -> list[int]:
    """Per row, one past its last real token (its length once right padding is cut)."""
    positions = torch.arange(1, attention_mask.shape[1] + 1)
    return (attention_mask.cpu().bool() * positions).amax(1).clamp(min=1).tolist()


@torch.inference_mode()
def capture_layer_inputs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    batch_tokens: int,
    device: torch.device,
) -> LayerInputs:
    """Layer 0's inputs for every batch of the calibration rows (in batches of at most ``batch_tokens``
    padded tokens, right padding cut; the rows' order is the batches' order, not the caller's)."""
    first = decoder_layers(model)[0]
    captured = LayerInputs([], [], [])

    def hook(_module, args, kwargs):
        hidden = args[0] if args else kwargs.pop("hidden_states")
        rest = {k: v for k, v in kwargs.items() if k not in ("past_key_values", "past_key_value", "layer_past")}
        rest["use_cache"] = False
        captured.hidden.append(hidden.detach())
        captured.kwargs.append(rest)
        raise _Captured

    handle = first.register_forward_pre_hook(hook, with_kwargs=True)
    home = next(first.parameters()).device
    first.to(device)
    try:
        with non_layer_weights_on(model, device):
            extents = _extents(attention_mask)
            for rows in length_batches(extents, batch_tokens):
                index = torch.tensor(rows)
                width = max(extents[i] for i in rows)
                mask = attention_mask[index, :width].to(device)
                with contextlib.suppress(_Captured):
                    model(input_ids=input_ids[index, :width].to(device), attention_mask=mask, use_cache=False)
                captured.masks.append(mask)
                captured.rows.append(rows)
    finally:
        handle.remove()
        first.to(home)
    return captured


@torch.inference_mode()
def run_layer(layer: torch.nn.Module, inputs: LayerInputs) -> list[torch.Tensor]:
    """The layer's outputs for every captured batch (the next layer's inputs)."""
    return [hidden_of(layer(h, **kw)) for h, kw in zip(inputs.hidden, inputs.kwargs, strict=True)]
