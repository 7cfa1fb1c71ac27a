"""Which linears of a decoder layer share an input, which module's output judges their scale, and
where that scale folds — traced on the layer itself, for AWQ (awq.py), without a table of module names.

One replay of a calibration sequence records which tensor every module reads and which norm returned
it. Linears fed the very same tensor form a group (q/k/v; gate/up; Phi's q/k/v *and* fc1, which read
one LayerNorm). The search compares the output of the largest module fed that tensor (the attention,
the MLP, Phi's whole layer; the linear itself for o_proj and down_proj). A fold target — the norm that
returned the tensor, or a block of rows of an earlier linear (up_proj for down_proj, the v rows of a
fused qkv for o_proj, OPT's fc1 through ReLU) — is accepted only if dividing it by random powers of two
and multiplying the group's columns by them leaves the layer's output unchanged, which is exact in
floating point for a right fold and far off for a wrong one. When none passes, the group keeps s = 1
and ``fallback`` says why (GELU before an MLP's output projection, a grouped-query v_proj narrower than
o_proj, heads that interleave q/k/v rows …). A mixture-of-experts block, whose router and experts
each read their own view of the block's input, becomes one group with its routers, whose columns take
the scale unrounded (``_through_the_router``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from cola_core.compress.capture import LayerInputs
from cola_core.compress.experts import SplitExperts, expert_of, real_tokens
from cola_core.compress.statistics import find_linears, find_routers, real_rows, weight_of
from cola_core.models.architecture import hidden_of


@dataclass
class ScaleGroup:
    linears: list[str]  # fed the very same tensor, in call order
    module: str  # the module whose output the search compares ("" is the decoder layer)
    fold: tuple[str, int, int] | None = None  # (module, first row, end row) whose outputs are the input
    fallback: str | None = None  # why s = 1, when there is no fold


def take_sequences(inputs: LayerInputs, index: list[list[int]]) -> LayerInputs:
    """The sequences ``index[b]`` of every batch b (batches left empty are dropped), keyword arguments
    included: their tensors of ≥ 2 dims led by the batch size are indexed the same way."""
    out = LayerInputs([], [], [])
    for h, kw, mask, rows in zip(inputs.hidden, inputs.kwargs, inputs.masks, index, strict=True):
        if rows:
            picked = torch.tensor(rows, device=h.device)
            out.hidden.append(h[picked])
            out.kwargs.append({name: _rows_of(v, picked, len(h)) for name, v in kw.items()})
            out.masks.append(mask[picked])
    return out


def _rows_of(value: Any, picked: torch.Tensor, batch: int) -> Any:
    if isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[0] == batch:
        return value[picked.to(value.device)]
    if isinstance(value, tuple):
        return tuple(_rows_of(v, picked, batch) for v in value)
    return value


@contextlib.contextmanager
def hooks(*handles: torch.utils.hooks.RemovableHandle):
    """Remove the hooks on leaving, whatever happens."""
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_rows(layer: torch.nn.Module, inputs: LayerInputs) -> list[torch.Tensor]:
    """The layer's outputs on the real tokens of every batch."""
    out = []
    for h, kw, mask in zip(inputs.hidden, inputs.kwargs, inputs.masks, strict=True):
        with real_tokens(layer, mask):
            out.append(real_rows(hidden_of(layer(h, **kw)), mask))
    return out


@torch.inference_mode()
def find_groups(layer: torch.nn.Module, sample: LayerInputs) -> list[ScaleGroup]:
    """The layer's groups of linears sharing an input, the module each search compares, and the fold
    target of each (or why there is none), from one replay of one sequence of the sample."""
    longest = [int(mask.sum(1).max()) for mask in sample.masks]
    b = longest.index(max(longest))  # the sequence with most real tokens: its replay must say something
    probe = take_sequences(sample, [[int(m.sum(1).argmax())] if i == b else [] for i, m in enumerate(sample.masks)])
    linears = find_linears(layer)
    seen_in: dict[str, torch.Tensor] = {}  # module → its first tensor input, in call order
    made_by: dict[int, list[str]] = {}  # id(tensor) → the norms (1-D weight) that returned it
    held: list[torch.Tensor] = []  # every recorded tensor stays alive, so no id is reused
    norms = {n: m for n, m in layer.named_modules() if _has_vector_weight(m)}

    def on_call(name: str):
        def hook(_module, args, kwargs):
            x = args[0] if args else kwargs.get("hidden_states")
            if isinstance(x, torch.Tensor) and name not in seen_in:
                seen_in[name] = x

        return hook

    def on_output(name: str):
        def hook(_module, _args, output):
            if isinstance(output, torch.Tensor):
                held.append(output)
                made_by.setdefault(id(output), []).append(name)

        return hook

    handles = [m.register_forward_pre_hook(on_call(n), with_kwargs=True) for n, m in layer.named_modules()]
    handles += [m.register_forward_hook(on_output(n)) for n, m in norms.items()]
    with hooks(*handles):
        reference = run_rows(layer, probe)
    order = list(seen_in)
    shared: dict[int, list[str]] = {}
    for name in order:
        if name in linears:
            shared.setdefault(id(seen_in[name]), []).append(name)
    split = {n: m for n, m in layer.named_modules() if isinstance(m, SplitExperts)}
    groups = []
    for names in shared.values():
        x = seen_in[names[0]]
        called = [n for n in _enclosing(names) if n in seen_in]
        module = next((n for n in reversed(called) if seen_in[n] is x), called[0])  # the largest fed x
        norm_outputs = [n for n in made_by.get(id(x), []) if norms[n].weight.numel() == x.shape[-1]]
        home = expert_of(names[0], split)
        earlier = [
            n
            for n in reversed(order[: order.index(names[0])])
            if n in linears and n not in names and expert_of(n, split) in (None, home)  # not another expert's
        ]
        group = ScaleGroup(names, module)
        group.fold, group.fallback = _find_fold(layer, group, norm_outputs, earlier, probe, reference)
        groups.append(group)
    groups += _untraced_experts(groups, split)
    for prefix in split:
        block = prefix.rpartition(".")[0]
        if block and isinstance(seen_in.get(block), torch.Tensor):
            x = seen_in[block]
            norm_outputs = [n for n in made_by.get(id(x), []) if norms[n].weight.numel() == x.shape[-1]]
            groups = _through_the_router(layer, groups, block, norm_outputs, probe, reference)
    return groups


def _through_the_router(
    layer: torch.nn.Module,
    groups: list[ScaleGroup],
    block: str,
    norm_outputs: list[str],
    probe: LayerInputs,
    reference: list[torch.Tensor],
) -> list[ScaleGroup]:
    """A mixture-of-experts block reads one tensor x, but its router and each expert see their own
    views and rows of it, so no two of their linears share a tensor and every expert's gate/up would
    keep s = 1. Here they become one group: every linear of the block that reads x's channels without
    a fold of its own (each expert's gate/up, a shared expert's), plus the routers, whose columns take
    s too but are never rounded — so routing is unchanged — searched on the whole block's output and
    folded into the norm that returned x (llm-compressor's MoE mapping, ``mlp.gate`` among its balance
    layers). Kept only if that fold passes the trial; otherwise the groups stay as they were."""
    width = len(layer.get_submodule(norm_outputs[0]).weight) if norm_outputs else 0
    inside = [g for g in groups if g.fold is None and all(n.startswith(block + ".") for n in g.linears)]
    members = [g for g in inside if all(weight_of(layer.get_submodule(n)).shape[1] == width for n in g.linears)]
    routers = [n for n in find_routers(layer) if n.startswith(block + ".") and _router_width(layer, n) == width]
    if not members or not norm_outputs:
        return groups
    merged = ScaleGroup(routers + [n for g in members for n in g.linears], block)
    merged.fold, _ = _find_fold(layer, merged, norm_outputs, [], probe, reference)
    if merged.fold is None:
        return groups
    first, taken = groups.index(members[0]), {id(g) for g in members}
    rest = [g for g in groups if id(g) not in taken]
    return [*rest[:first], merged, *rest[first:]]


def _router_width(layer: torch.nn.Module, name: str) -> int:
    """The input width of a router (``nn.Linear``, or a module whose 2-D weight is experts × inputs)."""
    weight = columns(layer.get_submodule(name))
    return int(weight.shape[1]) if weight.dim() == 2 else -1


def columns(module: torch.nn.Module) -> torch.Tensor:
    """The (out × in) weight, a view: GPT-2's ``Conv1D`` stores it transposed; an ``nn.Linear`` or a
    router module (Qwen3-MoE's ``TopKRouter``: experts × inputs, applied by ``F.linear``) does not."""
    from transformers.pytorch_utils import Conv1D

    return module.weight.data.t() if isinstance(module, Conv1D) else module.weight.data


def _untraced_experts(groups: list[ScaleGroup], split: dict[str, SplitExperts]) -> list[ScaleGroup]:
    """The groups of the experts the probe's tokens did not reach: every expert of a split experts
    module is built alike (experts.py), so each gets the groups of the first expert that was traced,
    with the names moved to its own linears."""
    added = []
    for prefix, module in split.items():
        traced: dict[int, list[ScaleGroup]] = {}
        for g in groups:
            if (where := expert_of(g.linears[0], split)) and where[0] == prefix:
                traced.setdefault(where[1], []).append(g)
        if not traced:
            continue
        first = min(traced)

        def moved(name: str, e: int, first: int = first, prefix: str = prefix) -> str:
            head = f"{prefix}.{first}"
            return f"{prefix}.{e}{name[len(head) :]}" if name == head or name.startswith(head + ".") else name

        for e in range(module.num_experts):
            if e not in traced:
                for g in traced[first]:
                    fold = (moved(g.fold[0], e), g.fold[1], g.fold[2]) if g.fold else None
                    added.append(ScaleGroup([moved(n, e) for n in g.linears], moved(g.module, e), fold, g.fallback))
    return added


def _has_vector_weight(module: torch.nn.Module) -> bool:
    """A norm, as far as folding goes: a module whose weight scales each output channel."""
    weight = getattr(module, "weight", None)
    return isinstance(weight, torch.Tensor) and weight.dim() == 1


def _enclosing(names: list[str]) -> list[str]:
    """The smallest module holding all ``names`` (the linear itself for one), then its ancestors."""
    parts = [n.split(".") for n in names]
    levels = enumerate(zip(*parts, strict=False))
    common = parts[0][: next((i for i, level in levels if len(set(level)) > 1), min(map(len, parts)))]
    return [".".join(common[:i]) for i in range(len(common), -1, -1)]


def _find_fold(
    layer: torch.nn.Module,
    group: ScaleGroup,
    norm_outputs: list[str],
    earlier: list[str],
    probe: LayerInputs,
    reference: list[torch.Tensor],
) -> tuple[tuple[str, int, int] | None, str | None]:
    """The first candidate whose outputs are exactly the group's input channels: the norm that returned
    the input, then blocks of rows of the earlier linears, nearest first."""
    width = columns(layer.get_submodule(group.linears[0])).shape[1]
    candidates = [(name, 0, width) for name in norm_outputs]
    odd = []
    for name in earlier:
        rows = weight_of(layer.get_submodule(name)).shape[0]
        if rows % width:
            odd.append(name)
        else:
            candidates += [(name, b * width, (b + 1) * width) for b in range(rows // width)]
    gen = torch.Generator().manual_seed(0)
    dtype, device = next(layer.parameters()).dtype, probe.hidden[0].device
    tol = 1e-5 if dtype == torch.float32 else 1e-3  # an exact fold changes nothing at all; a wrong one, O(1)
    for fold in candidates:
        s = torch.where(torch.rand(width, generator=gen) < 0.5, 0.5, 2.0).to(device)  # exact powers of two
        trial = ScaleGroup(group.linears, group.module, fold)
        fold_scale(layer, trial, s)
        try:
            outputs = run_rows(layer, probe)
        finally:
            fold_scale(layer, trial, 1 / s)  # undone exactly
        if all(_max_diff(o, r) <= tol * float(r.abs().max()) for o, r in zip(outputs, reference, strict=True)):
            return fold, None
    tried = ", ".join(fold_name(layer, c) for c in candidates) or "none"
    reason = f"no earlier op scales its input channel by channel (tried: {tried}"
    if odd:
        reason += f"; outputs not a multiple of its {width} inputs: {', '.join(odd)}"
    return None, reason + ")"


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) if a.numel() else 0.0


def fold_name(layer: torch.nn.Module, fold: tuple[str, int, int] | None) -> str | None:
    """``input_layernorm``, ``mlp.up_proj``, or ``self_attn.qkv_proj[64:96]`` for a block of rows."""
    if fold is None:
        return None
    name, lo, hi = fold
    target = layer.get_submodule(name)
    rows = target.weight.shape[0] if target.weight.dim() == 1 else weight_of(target).shape[0]
    return name if hi - lo == rows else f"{name}[{lo}:{hi}]"


def fold_scale(layer: torch.nn.Module, group: ScaleGroup, s: torch.Tensor) -> None:
    """Divide the fold target's outputs by ``s`` and multiply the group's input columns by ``s``, in
    place: the layer computes the same function, and the group's weights are now W·diag(s)."""
    if group.fold is None:
        return
    name, lo, hi = group.fold
    target = layer.get_submodule(name)
    w = target.weight.data if target.weight.dim() == 1 else weight_of(target)
    w[lo:hi] = (w[lo:hi].float() / (s if w.dim() == 1 else s[:, None])).to(w.dtype)
    bias = getattr(target, "bias", None)
    if isinstance(bias, torch.Tensor):
        bias.data[lo:hi] = (bias.data[lo:hi].float() / s).to(bias.dtype)
    for linear in group.linears:  # routers among them too (their columns scaled, never rounded)
        w = columns(layer.get_submodule(linear))
        w.copy_((w.float() * s).to(w.dtype))
