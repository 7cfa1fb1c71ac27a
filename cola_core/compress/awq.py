"""AWQ, activation-aware weight quantization (Lin et al., MLSys 2024): the layer-level step that runs
before the engine rounds the weights (RTN, or GPTQ with ``awq_quantizer="gptq"``).

§3.2: a weight that meets a large activation matters more, and scaling input channel j of a linear up
by s_j before rounding (its input down by s_j) shrinks that weight's relative rounding error. Per group
of linears fed one tensor x, s = mean|x|^α / √(max·min), α ∈ {0, 1/grid, …} searched to minimise
‖f(Q(W·s), x/s) − f(W, x)‖² for the smallest module f holding the group (the attention for q/k/v, the
MLP for gate/up — a mixture-of-experts block for its routers and every expert's gate/up — the linear
itself for o_proj and down_proj) on the calibration tokens, padding masked; α = 0 is plain RTN.
1/s is folded into the op producing x, so the dense model is unchanged. With ``awq_clip`` the
reference code's ``auto_clip`` then shrinks each (row, group) weight range where that lowers the
linear's output error (not for q/k, whose error acts through the softmax).

Which linears share an input, which module judges their scale and where 1/s folds (a norm, or rows of
an earlier linear) is traced and verified on each layer itself, not read from a table of module names:
awq_groups.py. A group with nothing to fold into keeps s = 1, and its ``fallback`` says why.
One replay of the layer records every group's module inputs and outputs; each group's are dropped
once its search is done. Memory: at most ``awq_tokens`` real tokens (whole sequences spread over the
calibration set) through the layer's searched modules, and one copy of a group's weights; the clipping
search reads 512 of those tokens, in bounded row batches.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import torch

from cola_core.compress.awq_groups import (
    ScaleGroup,
    find_groups,
    fold_name,
    fold_scale,
    hooks,
    take_sequences,
)
from cola_core.compress.capture import LayerInputs
from cola_core.compress.experts import ROUTER, real_tokens
from cola_core.compress.quantization import grid_params
from cola_core.compress.statistics import real_rows, set_weight, weight_of
from cola_core.models.architecture import hidden_of

if TYPE_CHECKING:
    from cola_core.compress.config import CompressConfig as Settings

_CLIP_TOKENS = 512  # tokens the clipping search reads (the reference's n_sample_token)
_CLIP_STEPS = 10  # max |w| shrunk by 0 %, 5 %, …, 45 % (the reference: a 20-step grid, at most 50 %)
_CLIP_FLOATS = 1 << 24  # rows per batch of the clipping search keep its largest temporary below this
_QK = re.compile(r"(^|\.)(q_proj|k_proj|qkv_proj|query_key_value|c_attn|Wqkv|query|key)$")


def sample_inputs(inputs: LayerInputs, max_tokens: int) -> LayerInputs:
    """Whole sequences spread evenly over the calibration set, as many as hold at most ``max_tokens``
    real tokens (at least one): the search reads these."""
    counts = [int(c) for mask in inputs.masks for c in mask.sum(1).tolist()]
    n = len(counts)

    def spread(k: int) -> list[int]:
        return [i * n // k for i in range(k)]

    k = max(1, min(n, max_tokens * n // max(sum(counts), 1)))
    while k < n and sum(counts[i] for i in spread(k + 1)) <= max_tokens:
        k += 1
    while k > 1 and sum(counts[i] for i in spread(k)) > max_tokens:
        k -= 1
    chosen, index, start = set(spread(k)), [], 0
    for mask in inputs.masks:
        index.append([i - start for i in range(start, start + len(mask)) if i in chosen])
        start += len(mask)
    return take_sequences(inputs, index)


def awq_scales(x_mean: torch.Tensor, alpha: float, w_mean: torch.Tensor | None = None) -> torch.Tensor:
    """s = mean|x|^α, normalised by √(max·min) as in the reference code; α = 0 gives s = 1. With
    ``w_mean`` (duo scaling, AutoAWQ's search), s = mean|x|^α / (w_mean^(1−α) + 10⁻⁴)."""
    s = x_mean.float().pow(alpha)
    if w_mean is not None:
        s = s / (w_mean.pow(1 - alpha) + 1e-4)
    s = s.clamp(min=1e-4)
    s = s / (s.max() * s.min()).sqrt()
    return torch.where(torch.isfinite(s), s, torch.ones_like(s))


def fake_quantize(
    w: torch.Tensor, bits: int, group_size: int, symmetric: bool, s: torch.Tensor | None = None
) -> torch.Tensor:
    """``quantize_rtn(w · s, …).weight / s`` for every group at once (the same grid and the same
    arithmetic, in place on one new tensor: 14× faster than a temporary per step); ``s`` = 1 if not
    given."""
    q = torch.empty(w.shape, dtype=torch.float32, device=w.device)  # contiguous, whatever w's layout
    if s is None:
        q.copy_(w)
    else:
        torch.mul(w, s, out=q)
    rows = q.view(-1, q.shape[1] if group_size <= 0 else group_size)
    scale, zero = grid_params(rows, bits, symmetric)
    scale, zero = scale[:, None], zero[:, None]
    rows.div_(scale).round_().add_(zero).clamp_(0, 2**bits - 1).sub_(zero).mul_(scale)
    return q.div_(s) if s is not None else q


def weight_means(weights: list[torch.Tensor], group_size: int) -> torch.Tensor:
    """Per input channel, the mean over every row of the group's linears of |w| / max|w| of its
    quantization group: how large a weight is on its own grid (duo scaling's w_mean)."""
    total = None
    for w in weights:
        size = w.shape[1] if group_size <= 0 else group_size
        g = w.float().abs().reshape(-1, size)
        g = (g / (g.amax(1, keepdim=True) + 1e-6)).reshape(w.shape).sum(0)
        total = g if total is None else total + g
    return total / sum(len(w) for w in weights)


def candidates(
    x_mean: torch.Tensor, weights: list[torch.Tensor], settings: Settings
) -> list[tuple[float, torch.Tensor]]:
    """The search's (α, s) candidates: plain RTN (s = 1) first, then ``awq_grid`` − 1 more — α = 1/grid,
    …, or with duo scaling α = 0, 1/(grid − 2), …, 1 of mean|x|^α / w_mean^(1−α), as llm-compressor."""
    grid = settings.awq_grid
    if not settings.awq_duo or grid < 2:
        return [(i / grid, awq_scales(x_mean, i / grid)) for i in range(grid)]
    w_mean = weight_means(weights, settings.group_size)
    duo = [(i / max(grid - 2, 1), awq_scales(x_mean, i / max(grid - 2, 1), w_mean)) for i in range(grid - 1)]
    return [(0.0, awq_scales(x_mean, 0.0)), *duo]


def rounded(group: ScaleGroup) -> list[str]:
    """The group's linears that get rounded: all but the routers of a mixture-of-experts group, whose
    columns take the scales only so that routing stays as it was (awq_groups.py)."""
    return [n for n in group.linears if not ROUTER.search(n)]


@dataclass
class Captured:
    """What the replay records for one group: its module's calls (with the batch's mask) and
    real-token outputs, Σ|x| per batch and the count of its input's real tokens, and evenly spaced
    input rows."""

    calls: list[tuple[tuple, dict, torch.Tensor]] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    abs_sums: list[torch.Tensor] = field(default_factory=list)
    tokens: int = 0
    picked: list[torch.Tensor] = field(default_factory=list)


@torch.inference_mode()
def capture_groups(layer: torch.nn.Module, sample: LayerInputs, groups: list[ScaleGroup]) -> list[Captured]:
    """One replay of the sample through the dense layer records every group at once (it was one replay
    per group). A group's input and its module's output are what they would be after the groups behind
    it fold their scales (the search goes last group first): a fold leaves the function unchanged, and
    it acts on what comes after the op it folds into."""
    total = int(sum(int(m.sum()) for m in sample.masks))
    stride = max(1, math.ceil(total / _CLIP_TOKENS))
    records = [Captured() for _ in groups]
    mask: list[torch.Tensor] = []  # the batch's

    def on_call(record: Captured, _module, args, kwargs):  # an expert may sit out a batch
        record.calls.append((args, dict(kwargs), mask[0]))

    def on_input(record: Captured, _module, args):
        rows = real_rows(args[0], mask[0])
        record.abs_sums.append(rows.abs().sum(0))
        index = torch.arange(record.tokens, record.tokens + len(rows), device=rows.device)
        record.picked.append(rows[index % stride == 0])
        record.tokens += len(rows)

    def on_output(record: Captured, _module, _args, output):
        record.outputs.append(real_rows(hidden_of(output), mask[0]))

    handles = []
    for group, record in zip(groups, records, strict=True):
        module, leader = layer.get_submodule(group.module), layer.get_submodule(group.linears[0])
        handles += [
            module.register_forward_pre_hook(partial(on_call, record), with_kwargs=True),
            leader.register_forward_pre_hook(partial(on_input, record)),
            module.register_forward_hook(partial(on_output, record)),
        ]
    with hooks(*handles):
        for h, kw, batch_mask in zip(sample.hidden, sample.kwargs, sample.masks, strict=True):
            mask[:] = [batch_mask]
            with real_tokens(layer, batch_mask):
                layer(h, **kw)
    return records


def _module_error(
    module: torch.nn.Module, calls: list[tuple[tuple, dict, torch.Tensor]], refs: list[torch.Tensor]
) -> float:
    """‖f(x) − f_dense(x)‖² / ‖f_dense(x)‖² over the sample's real tokens."""
    err = den = 0.0
    for (args, kwargs, mask), ref in zip(calls, refs, strict=True):
        rows = real_rows(hidden_of(module(*args, **kwargs)), mask)
        err += float((rows - ref).square().sum())
        den += float(ref.square().sum())
    return err / den if den > 0 else 0.0


@torch.inference_mode()
def search_scale(
    layer: torch.nn.Module, group: ScaleGroup, captured: Captured, settings: Settings
) -> tuple[torch.Tensor, dict[str, Any], torch.Tensor]:
    """The group's scales s (one per input channel, positive; all 1 without a fold target), what the
    report shows of the search, and sampled input rows for clipping. The weights are left as found. A
    mixture-of-experts expert that no token of the sample reaches keeps s = 1 and gets no rows."""
    module = layer.get_submodule(group.module)
    linears = [layer.get_submodule(n) for n in rounded(group)]
    if not captured.abs_sums:  # an expert no token of the sample was routed to
        width = weight_of(linears[0]).shape[1]
        unseen = {"alpha": None, "duo": False, "error_rtn": None, "error_awq": None, "unseen": True}
        return torch.ones(width, device=weight_of(linears[0]).device), unseen, torch.empty(0, width)
    x_mean = torch.stack(captured.abs_sums).sum(0) / max(captured.tokens, 1)
    originals = [weight_of(m).clone() for m in linears]
    grid = candidates(x_mean, originals, settings) if group.fold else [(0.0, awq_scales(x_mean, 0.0))]
    best = (math.inf, 0)
    errors = []
    try:
        for i, (_, s) in enumerate(grid):
            for m, w in zip(linears, originals, strict=True):
                set_weight(m, fake_quantize(w, settings.bits, settings.group_size, settings.symmetric, s))
            errors.append(_module_error(module, captured.calls, captured.outputs))
            best = min(best, (errors[-1], i))
    finally:
        for m, w in zip(linears, originals, strict=True):
            set_weight(m, w)
    error, i = best
    alpha, s = grid[i]
    info = {
        "alpha": alpha if group.fold else None,
        "duo": settings.awq_duo and i > 0,
        "error_rtn": errors[0],
        "error_awq": min(error, errors[0]),
    }
    return s, info, torch.cat(captured.picked)


def clip_weight(
    w: torch.Tensor, x: torch.Tensor, bits: int, group_size: int, symmetric: bool
) -> tuple[torch.Tensor, float]:
    """The reference code's ``auto_clip``: per output row and group, the range ±max|w|·(1 − i/20),
    i < 10, whose rounded weights give the least error of that group's partial output on the rows ``x``
    (n × in). Returns the clipped weight (out × in) and the mean kept fraction of the range.

    The error of a group's change Δ = Q(w) − w is mean_n (Δ·x_n)², taken as Δᵀ G Δ with G = XᵀX / n
    of the group's columns when the group is no wider than n (128 columns, 512 rows: 4× fewer flops
    than the partial outputs, and no cancellation of Q(w)·x − w·x), else from the partial outputs."""
    out, d_in = w.shape
    size = d_in if group_size <= 0 else group_size
    xg = x.float().reshape(len(x), d_in // size, size).transpose(0, 1)  # groups × n × size
    gram = xg.transpose(1, 2) @ xg / max(len(x), 1) if size <= len(x) else None  # groups × size × size

    def errors(delta: torch.Tensor) -> torch.Tensor:  # rows × groups × size → rows × groups
        delta = delta.transpose(0, 1)
        if gram is not None:
            return (torch.bmm(delta, gram) * delta).sum(-1).t()
        return torch.bmm(delta, xg.transpose(1, 2)).square().mean(-1).t()

    step = max(1, _CLIP_FLOATS // max(1, d_in if gram is not None else len(x) * (d_in // size)))
    clipped, kept = torch.empty_like(w, dtype=torch.float32), []
    for r in range(0, out, step):
        wg = w[r : r + step].float().reshape(-1, d_in // size, size)
        amax = wg.abs().amax(-1, keepdim=True)
        best, best_err = amax, torch.full(amax.shape[:2], math.inf, device=w.device)
        for i in range(_CLIP_STEPS):
            limit = amax * (1 - i / 20)
            q = fake_quantize(wg.clamp(-limit, limit).reshape(len(wg), d_in), bits, group_size, symmetric)
            err = errors(q.reshape_as(wg).sub_(wg))
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best = torch.where(better[..., None], limit, best)
        clipped[r : r + step] = wg.clamp(-best, best).reshape(len(wg), d_in)
        kept.append((best / amax.clamp(min=1e-12)).flatten())
    return clipped, float(torch.cat(kept).mean())


@torch.inference_mode()
def prepare_awq(layer: torch.nn.Module, inputs: LayerInputs, settings: Settings) -> dict[str, Any]:
    """The engine's layer-level step for AWQ: search and fold the scales of every group (and clip),
    in place, on the dense layer; returns the layer's ``awq`` report."""
    sample = sample_inputs(inputs, settings.awq_tokens)
    groups = find_groups(layer, sample)
    reports: dict[int, dict[str, Any]] = {}
    clip_inputs: dict[str, torch.Tensor] = {}
    # Last group first: a group's search then rounds the weights it will end with (up_proj's rows
    # already carry down_proj's 1/s, v_proj's o_proj's), as the dense function is unchanged anyway.
    captured = capture_groups(layer, sample, groups)
    for index in reversed(range(len(groups))):
        group = groups[index]
        s, info, rows = search_scale(layer, group, captured[index], settings)
        captured[index] = Captured()  # its module's inputs and outputs are no longer needed
        fallback = group.fallback
        if info.pop("unseen", False):
            fallback = "no token of the AWQ sample was routed to this expert: s = 1, no clipping"
        else:
            fold_scale(layer, group, s)
            clip_inputs.update(dict.fromkeys(rounded(group), rows / s))
        reports[index] = {
            "linears": group.linears,
            "module": group.module or "layer",
            "fold": fold_name(layer, group.fold),
            **info,
            "scale_min": float(s.min()),
            "scale_max": float(s.max()),
            "fallback": fallback,
        }
    kept = {}
    if settings.awq_clip:
        for name, x in clip_inputs.items():
            if not _QK.search(name):
                module = layer.get_submodule(name)
                w, kept[name] = clip_weight(
                    weight_of(module), x, settings.bits, settings.group_size, settings.symmetric
                )
                set_weight(module, w)
    return {
        "tokens": int(sum(int(m.sum()) for m in sample.masks)),
        "quantizer": settings.awq_quantizer,
        "groups": [reports[i] for i in range(len(groups))],
        "clip": settings.awq_clip,
        "clip_kept": kept,
    }
