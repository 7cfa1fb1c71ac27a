"""Capturing what the first decoder layer receives, so layers can be replayed one at a time.

A pre-hook on decoder layer 0 records its hidden-state input and every keyword argument the model
passes (attention mask, position ids, rotary position embeddings, cache flags …) for each calibration
batch, then stops the forward pass. Works for any family whose blocks sit in one ModuleList.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from cola_core.models.architecture import decoder_layers, hidden_of


class _Captured(Exception):
    pass


@dataclass
class LayerInputs:
    hidden: list[torch.Tensor]  # one (B, T, d) tensor per batch
    kwargs: list[dict[str, Any]]  # the keyword arguments of the layer call, per batch
    masks: list[torch.Tensor]  # (B, T) attention masks: which tokens are real


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


@torch.inference_mode()
def capture_layer_inputs(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, batch_size: int, device: torch.device
) -> LayerInputs:
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
            for s in range(0, len(input_ids), batch_size):
                mask = attention_mask[s : s + batch_size].to(device)
                with contextlib.suppress(_Captured):
                    model(input_ids=input_ids[s : s + batch_size].to(device), attention_mask=mask, use_cache=False)
                captured.masks.append(mask)
    finally:
        handle.remove()
        first.to(home)
    return captured


@torch.inference_mode()
def run_layer(layer: torch.nn.Module, inputs: LayerInputs) -> list[torch.Tensor]:
    """The layer's outputs for every captured batch (the next layer's inputs)."""
    return [hidden_of(layer(h, **kw)) for h, kw in zip(inputs.hidden, inputs.kwargs, strict=True)]
