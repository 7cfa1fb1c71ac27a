"""Mixture-of-experts layers, compressed expert by expert.

transformers 5 keeps a layer's experts fused in 3-D parameters (``gate_up_proj`` (E, 2I, H),
``down_proj`` (E, H, I), or their transposes, as in gpt-oss), not as ``nn.Linear``s, so a compressor
that looks for linears silently leaves every expert dense. While one decoder layer is compressed,
:func:`split_experts` swaps each fused experts module for :class:`SplitExperts`: the same function,
whose experts hold ``gate_proj``/``up_proj``/``down_proj`` ``nn.Linear``s whose weights are *views*
into the fused parameters (no copy; a compressed weight written into a view is written into the
fused tensor). Every method then finds the experts' projections as the linears they are, with the
statistics of the tokens that reach them; on leaving, the original module is put back, holding the
compressed weights, and the model saves and loads as before.

Which tokens an expert's statistics come from (``CompressConfig.moe_calibration``):
- ``routed``: the tokens the router sends it, as deployed. An expert that receives fewer than
  ``moe_floor`` × its input width real tokens would get a singular or noisy statistic; it is named in
  the report and its statistics are collected again from every token (``all``) — never a NaN scale
  and never an untouched expert;
- ``all``: every calibration token goes through every expert, for the statistics only (what
  llm-compressor's MoE calibration does); the layer's output is still the routed one.
Routers (``mlp.gate``, ``router``, Qwen2-MoE's ``shared_expert_gate``) are not compressed.

Memory: one layer at a time, as for dense models; the views add nothing, and the statistics are one
per expert input (gate/up share theirs): measured in docs/compression.md.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from cola_core.errors import ColaError
from cola_core.models.architecture import expert_width, fused_experts

MOE_CALIBRATION = ("routed", "all")
# Routers and the shared expert's gate: they pick experts, and stay dense (llm-compressor ignores them too).
ROUTER = re.compile(r"(^|\.)(gate|router|shared_expert_gate)$")


class ExpertMLP(torch.nn.Module):
    """One expert as linears: gate_proj, up_proj and down_proj over views of the fused weights, and
    the family's own activation between them (``_apply_gate`` of the fused module: SwiGLU, gpt-oss's
    clamped GLU …), on gate and up laid out as the fused module lays them out."""

    def __init__(self, gate: torch.nn.Linear, up: torch.nn.Linear, down: torch.nn.Linear, fused: torch.nn.Module):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = gate, up, down
        self.fused = [fused]  # a list: not a submodule
        self.interleaved = not fused.is_concatenated

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, u = self.gate_proj(x), self.up_proj(x)
        gate_up = torch.stack((g, u), -1).flatten(-2) if self.interleaved else torch.cat((g, u), -1)
        return self.down_proj(self.fused[0]._apply_gate(gate_up))


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> torch.nn.Linear:
    """An ``nn.Linear`` whose weight (and bias) are the given views: writes go to the fused tensors."""
    lin = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    lin.weight = torch.nn.Parameter(weight, requires_grad=False)
    if bias is not None:
        lin.bias = torch.nn.Parameter(bias, requires_grad=False)
    return lin


class SplitExperts(torch.nn.Module):
    """A fused experts module's function, computed expert by expert through linears (see the module
    docstring). ``real`` (flattened real-token flags of the batch, set by :func:`real_tokens`) keeps
    padding out of the experts; ``all_tokens`` names the experts that see every real token."""

    def __init__(self, fused: torch.nn.Module):
        super().__init__()
        self.fused = [fused]  # a list: not a submodule, so its 3-D parameters are not listed twice
        self.num_experts = int(fused.gate_up_proj.shape[0])
        gate_up, down = fused.gate_up_proj.data, fused.down_proj.data
        gate_up_bias = getattr(fused, "gate_up_proj_bias", None)
        down_bias = getattr(fused, "down_proj_bias", None)
        half = gate_up.shape[2 if fused.is_transposed else 1] // 2  # gate and up: 2I rows of each expert
        rows = (
            (slice(0, None, 2), slice(1, None, 2)) if not fused.is_concatenated else (slice(0, half), slice(half, None))
        )
        experts = []
        for e in range(self.num_experts):
            gu = gate_up[e].t() if fused.is_transposed else gate_up[e]  # (2I, H)
            dn = down[e].t() if fused.is_transposed else down[e]  # (H, I)
            gb = gate_up_bias.data[e] if gate_up_bias is not None else None
            experts.append(
                ExpertMLP(
                    _linear(gu[rows[0]], gb[rows[0]] if gb is not None else None),
                    _linear(gu[rows[1]], gb[rows[1]] if gb is not None else None),
                    _linear(dn, down_bias.data[e] if down_bias is not None else None),
                    fused,
                )
            )
        for e, expert in enumerate(experts):  # named 0, 1, …: mlp.experts.3.gate_proj, as checkpoints name them
            self.add_module(str(e), expert)
        self.experts = experts  # a plain list: the modules are registered once, by number
        self.floor_width = expert_width(fused)  # its statistic's rank needs this many tokens
        self.real: torch.Tensor | None = None
        self.all_tokens: frozenset[int] = frozenset()
        self.routed = torch.zeros(self.num_experts, dtype=torch.long)  # real tokens routed per expert

    def forward(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor, **_: Any):
        out = torch.zeros_like(hidden_states)
        real = self.real if self.real is not None else torch.ones(len(hidden_states), dtype=torch.bool)
        real = real.to(hidden_states.device)
        real_idx = real.nonzero().squeeze(1)
        for e in range(self.num_experts):
            hit = (top_k_index == e) & real[:, None]
            token_idx, slot = hit.nonzero(as_tuple=True)
            if self.real is not None:  # a statistics replay: count what the router sent
                self.routed[e] += len(token_idx)
            if e in self.all_tokens:  # every real token through the expert; its routed ones are the output
                y_all = self.experts[e](hidden_states[real_idx])
                where = torch.full((len(hidden_states),), -1, dtype=torch.long, device=real.device)
                where[real_idx] = torch.arange(len(real_idx), device=real.device)
                y = y_all[where[token_idx]]
            elif len(token_idx):
                y = self.experts[e](hidden_states[token_idx])
            else:
                continue
            w = top_k_weights[token_idx, slot, None]
            out.index_add_(0, token_idx, (y * w).to(out.dtype))
        return out


def _fused_experts(layer: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The layer's fused experts modules; a ColaError for a layout this module cannot split (rather
    than leaving the experts silently dense)."""
    found = {}
    for name, module in fused_experts(layer).items():
        fused = [p for p, t in module.named_parameters(recurse=False) if t.dim() == 3]
        known = isinstance(getattr(module, "gate_up_proj", None), torch.Tensor) and hasattr(module, "is_transposed")
        if not known or not getattr(module, "has_gate", False) or getattr(module, "has_post_expert_norm", False):
            raise ColaError(
                f"{type(module).__name__} ({name}) keeps its experts in a layout the compressor cannot split yet "
                f"({', '.join(fused)}); they would stay dense, so the run stops. Supported: experts of "
                "Qwen2/3-MoE, Mixtral, OLMoE, DeepSeek-V3, gpt-oss, GLM-4.5, Granite-MoE"
            )
        found[name] = module
    return found


@contextlib.contextmanager
def split_experts(layer: torch.nn.Module) -> Iterator[dict[str, SplitExperts]]:
    """Within the block, every fused experts module of ``layer`` is a :class:`SplitExperts` (a no-op
    for a dense layer). The weights stay where they are; the originals are back on leaving."""
    fused = _fused_experts(layer)
    split = {name: SplitExperts(module) for name, module in fused.items()}
    for name, module in split.items():
        _set_submodule(layer, name, module)
    try:
        yield split
    finally:
        for name, module in fused.items():
            _set_submodule(layer, name, module)


@contextlib.contextmanager
def split_all_experts(layers: Iterable[torch.nn.Module]) -> Iterator[None]:
    """:func:`split_experts` over several layers at once (what the checkpoint writer needs: every
    expert a linear of its own)."""
    with contextlib.ExitStack() as stack:
        for layer in layers:
            stack.enter_context(split_experts(layer))
        yield


def _set_submodule(root: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


@contextlib.contextmanager
def real_tokens(layer: torch.nn.Module, mask: torch.Tensor) -> Iterator[None]:
    """While replaying one batch: the split experts of ``layer`` see its real tokens only."""
    split = [m for m in layer.modules() if isinstance(m, SplitExperts)]
    for m in split:
        m.real = mask.reshape(-1).bool()
    try:
        yield
    finally:
        for m in split:
            m.real = None


def expert_of(name: str, split: dict[str, SplitExperts]) -> tuple[str, int] | None:
    """(experts module, expert index) of a linear named ``mlp.experts.3.gate_proj`` inside the split
    experts module ``mlp.experts``; None for any other linear."""
    for prefix in split:
        head = f"{prefix}."
        if name.startswith(head):
            return prefix, int(name[len(head) :].split(".", 1)[0])
    return None


def starving(split: dict[str, SplitExperts], floor: float) -> dict[str, list[int]]:
    """Per experts module, the experts that were routed fewer than ``floor`` × their input width real
    tokens in the replay just made."""
    out = {}
    for name, module in split.items():
        # an expert routed nothing always falls back: with no tokens it would have no statistic at all
        low = [e for e in range(module.num_experts) if int(module.routed[e]) < max(1.0, floor * module.floor_width)]
        if low:
            out[name] = low
    return out
