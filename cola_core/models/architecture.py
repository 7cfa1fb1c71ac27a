"""Finding the parts of any decoder-only causal LM generically: its decoder layers and MLP output.

Works for Llama, Qwen2, Mistral, GPT-2, GPT-NeoX, OPT, Phi and other families that keep their
decoder blocks in one ``nn.ModuleList`` — without a table of per-family attribute paths.
"""

from __future__ import annotations

import re

import torch

from cola_core.errors import ColaError

# The MLP's last projection: its *input* is the neuron activation pattern (act(gate)·up, act(fc1) …).
_MLP_OUT = re.compile(r"(^|\.)(down_proj|c_proj|fc2|fc_out|dense_4h_to_h|w2|wo)$")
_ATTENTION = re.compile(r"attn|attention", re.IGNORECASE)
_PROJ = re.compile(r"proj|w\d")  # a projection's name: gate_up_proj, down_proj, w1 …


def fused_experts(layer: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """A mixture-of-experts layer's modules that keep their experts fused in 3-D projection weights
    (transformers 5: ``Qwen3MoeExperts``, ``MixtralExperts`` … with ``gate_up_proj`` (E, 2I, H));
    empty for a dense layer."""
    return {
        name: module
        for name, module in layer.named_modules()
        if any(t.dim() == 3 and _PROJ.search(p) for p, t in module.named_parameters(recurse=False))
    }


def expert_width(module: torch.nn.Module) -> int:
    """The widest input of a fused experts module's projections (H for gate/up, I for down): the
    tokens an expert's statistics need to be of full rank, the floor of COLA's expert coverage and of
    the compressor's routed statistics."""
    down = [t for p, t in module.named_parameters(recurse=False) if t.dim() == 3 and "gate" not in p]
    return max(max(t.shape[1:]) for t in down)  # down_proj is (E, H, I) or (E, I, H): max(H, I) either way


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The ModuleList of decoder blocks: the longest one, which must match ``num_hidden_layers``."""
    lists = [m for _, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0]
    if not lists:
        raise ColaError(f"{type(model).__name__} has no list of decoder layers; only decoder-only LMs are supported")
    layers = max(lists, key=len)
    expected = getattr(model.config, "num_hidden_layers", None) if hasattr(model, "config") else None
    if expected is not None and expected != len(layers):
        raise ColaError(f"{type(model).__name__}: found {len(layers)} blocks, expected {expected} decoder layers")
    return layers


def mlp_output_projection(layer: torch.nn.Module) -> torch.nn.Module:
    """The MLP's output projection inside one decoder layer (not the attention's)."""
    for name, module in layer.named_modules():
        if _MLP_OUT.search(name) and not _ATTENTION.search(name):
            return module
    raise ColaError(f"could not find the MLP output projection in {type(layer).__name__}")


def hidden_of(output: object) -> torch.Tensor:
    """A decoder layer's hidden states, whether it returns a tensor or a tuple (transformers 4 vs 5)."""
    return output[0] if isinstance(output, (tuple, list)) else output  # type: ignore[return-value]


def input_device(model: torch.nn.Module) -> torch.device:
    """Where inputs go: the first device of a ``device_map`` (accelerate moves activations between
    the devices it spread the layers over), else the embedding's device."""
    placement = getattr(model, "hf_device_map", None)
    if placement:
        first = next(iter(placement.values()))
        if first in ("cpu", "disk"):
            return torch.device("cpu")
        return torch.device(f"cuda:{first}" if isinstance(first, int) else first)
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    weight = getattr(embeddings, "weight", None)
    return weight.device if weight is not None else next(model.parameters()).device
