"""Weight quantization of one matrix W (out × in) to a b-bit grid per group of input columns.

- RTN: round every weight to the nearest grid point, no calibration data (GPTQ's baseline);
- GPTQ (Frantar et al., ICLR 2023, §4): quantize column by column, spreading each column's error
  onto the not-yet-quantized columns with the inverse Hessian H = XXᵀ, in blocks (the sweep in obs.py).
  ``act_order`` visits columns by decreasing H diagonal; its groups are then *static*: each group's
  scale and zero come from the original weights of the columns it contains, so the integer codes
  map back to contiguous groups.

Grid: asymmetric — scale = (max − min)/(2^b − 1), zero = round(−min/scale); symmetric — scale =
2·max|w|/(2^b − 1), zero = 2^(b−1). Codes lie in [0, 2^b − 1]; weights are written back as
(code − zero) · scale, so any runtime loads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cola_core.compress.linalg import inverse_hessian_factor
from cola_core.compress.obs import Block, sweep_columns, transposed_copy, undamped_error


@dataclass
class QuantResult:
    weight: torch.Tensor | None  # dequantized, out × in (dropped once written back into the model)
    codes: torch.Tensor  # uint8, out × in
    scales: torch.Tensor  # out × groups
    zeros: torch.Tensor  # out × groups
    group_index: torch.Tensor  # (in,) group of each input column
    row_error: torch.Tensor | None  # GPTQ: each row's (w − ŵ)H(w − ŵ)ᵀ from its own sweep; RTN: None
    info: dict


def grid_params(w: torch.Tensor, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row scale and zero for the columns in ``w`` (out × cols)."""
    levels = 2**bits - 1
    if symmetric:
        amax = w.abs().amax(1).clamp(min=1e-8)
        return 2 * amax / levels, torch.full_like(amax, float(2 ** (bits - 1)))
    lo = w.amin(1).clamp(max=0)
    hi = w.amax(1).clamp(min=0)
    scale = ((hi - lo) / levels).clamp(min=1e-8)
    return scale, torch.round(-lo / scale)


def quantize_codes(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer codes of ``w`` (out,) or (out × cols) on the grid given per row."""
    if w.dim() == 2:
        scale, zero = scale.unsqueeze(1), zero.unsqueeze(1)
    return torch.clamp(torch.round(w / scale) + zero, 0, 2**bits - 1)


def _groups(d_in: int, group_size: int) -> tuple[int, int]:
    size = d_in if group_size <= 0 else group_size
    return size, d_in // size


def quantize_rtn(weight: torch.Tensor, bits: int, group_size: int = 128, symmetric: bool = False) -> QuantResult:
    w = weight.float()
    out, d_in = w.shape
    size, n_groups = _groups(d_in, group_size)
    codes = torch.empty_like(w)
    scales = torch.empty(out, n_groups, device=w.device)
    zeros = torch.empty(out, n_groups, device=w.device)
    for g in range(n_groups):
        cols = slice(g * size, (g + 1) * size)
        scales[:, g], zeros[:, g] = grid_params(w[:, cols], bits, symmetric)
        codes[:, cols] = quantize_codes(w[:, cols], scales[:, g], zeros[:, g], bits)
    gidx = torch.arange(d_in) // size
    deq = (codes - zeros[:, gidx]) * scales[:, gidx]
    return QuantResult(deq, codes.to(torch.uint8), scales, zeros, gidx, None, {"damp": None, "fallback": None})


def quantize_gptq(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    bits: int,
    group_size: int = 128,
    symmetric: bool = False,
    act_order: bool = False,
    blocksize: int = 128,
    damp: float = 0.01,
    keep: torch.Tensor | None = None,
) -> QuantResult:
    """GPTQ; with ``keep`` (bool, out × in) the weights outside it are set exactly to zero (code =
    zero point) as their columns are visited, their error spread like any other — a pruning mask
    survives quantization, as SparseGPT's own updates treat pruned weights."""
    w_t = transposed_copy(weight)  # the sweep's layout (obs.py): column j of W is row j
    d_in, out = w_t.shape
    size, n_groups = _groups(d_in, group_size)
    h = hessian.float()
    dead = torch.diag(h) == 0
    w_t[dead] = 0.0
    perm = torch.argsort(torch.diag(h), descending=True) if act_order else torch.arange(d_in)
    # without act_order the sweep runs on w_t itself: no permuted copies of W or H
    wp = w_t[perm] if act_order else w_t
    hinv, info, ridge = inverse_hessian_factor(h[perm][:, perm] if act_order else h, wp.t(), damp)
    if hinv is None:  # Cholesky failed at every damping: round to nearest instead
        result = quantize_rtn(weight, bits, group_size, symmetric)
        result.info = info
        return result
    gidx = torch.arange(d_in) // size  # group of each original column
    scales = torch.empty(out, n_groups, device=w_t.device)
    zeros = torch.empty(out, n_groups, device=w_t.device)
    if act_order:  # static groups from the original weights
        for g in range(n_groups):
            cols = slice(g * size, (g + 1) * size)
            kept = w_t[cols].t() if keep is None else w_t[cols].t() * keep[:, cols]
            scales[:, g], zeros[:, g] = grid_params(kept, bits, symmetric)
    keep_p = (keep[:, perm] if act_order else keep).t() if keep is not None else None  # in × out
    codes_p = torch.empty(d_in, out, dtype=torch.uint8, device=w_t.device)
    order, group = perm.tolist(), gidx.tolist()

    def choose(block: Block, i: int) -> torch.Tensor:
        """The column rounded to its group's grid; without act_order a group's grid is set on entering
        it, from the weights as updated so far."""
        col = order[block.start + i]
        g = group[col]
        if not act_order and col % size == 0:
            upcoming = block.w[i : i + size]
            if len(upcoming) < size:  # the group runs on past this block
                upcoming = torch.cat([upcoming, block.rest[: size - len(upcoming)]])
            if keep_p is not None:  # the grid of the weights that will stay
                upcoming = upcoming * keep_p[block.start + i : block.start + i + size]
            scales[:, g], zeros[:, g] = grid_params(upcoming.t(), bits, symmetric)
        c = quantize_codes(block.w[i], scales[:, g], zeros[:, g], bits)
        if keep_p is not None:
            c = torch.where(keep_p[block.start + i], c, zeros[:, g])
        codes_p[block.start + i] = c
        return (c - zeros[:, g]) * scales[:, g]

    loss = sweep_columns(wp, hinv, blocksize, choose)
    # the sweep leaves every column at its grid value (code − zero) · scale: wp is the dequantized weight
    deq, codes = wp, codes_p
    if act_order:
        deq, codes = torch.empty_like(w_t), torch.empty_like(codes_p)
        deq[perm], codes[perm] = wp, codes_p
    deq, codes = deq.t(), codes.t().contiguous()  # out × in; the codes packed as they are
    row_error = undamped_error(loss, weight, deq, ridge, dead)
    return QuantResult(deq, codes, scales, zeros, gidx, row_error, info)
