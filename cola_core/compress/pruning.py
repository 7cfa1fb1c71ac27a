"""Pruning one weight matrix W (out × in) given its input statistics.

- magnitude (Han et al., NeurIPS 2015): drop the smallest |W| in each output row;
- Wanda (Sun et al., ICLR 2024, §3): score |W_ij| · ‖X_j‖₂, drop the lowest per output row;
- SparseGPT (Frantar & Alistarh, ICML 2023, §3): OBS-style column-by-column pruning with the inverse
  Hessian H = XXᵀ, updating the remaining weights to compensate (the sweep in obs.py); the mask is
  chosen per block of columns by the saliency w² / [H⁻¹]_jj² (§3.2) — the block's lowest across all
  its rows, as the reference code does, so rows keep different counts — or per M columns for N:M (§3.3).

Unstructured sparsity s is exact: floor(d_in · s) zeros per output row for magnitude and Wanda, and
for SparseGPT per block of columns over all rows, floor(out · d_in · s) in all (a rank selection, not a
threshold, so ties never prune one too many). N:M keeps N of every M consecutive input weights.
Ranks are a stable sort's, so ties go to the lower index on every device: given the same scores, CPU
and GPU prune the same weights.
"""

from __future__ import annotations

import torch

from cola_core.compress.linalg import inverse_hessian_factor
from cola_core.compress.obs import Block, sweep_columns, transposed_copy, undamped_error


def _lowest(score: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k lowest scores along the last axis; ties broken by position (device-independent)."""
    return torch.sort(score, dim=-1, stable=True).indices[..., :k]


def prune_mask(score: torch.Tensor, sparsity: float, nm: tuple[int, int] | None) -> torch.Tensor:
    """Boolean mask of weights to prune: the lowest scores per row (unstructured) or per group of M."""
    out, d_in = score.shape
    mask = torch.zeros_like(score, dtype=torch.bool)
    if nm is not None:
        n, m = nm
        lowest = _lowest(score.reshape(out, d_in // m, m), m - n)
        return mask.reshape(out, d_in // m, m).scatter_(-1, lowest, True).reshape(out, d_in)
    return lowest_k(score, int(d_in * sparsity))


def lowest_k(score: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` lowest scores of each row: a stable sort's first k without sorting (4×
    faster on a 1,024 × 2,816 matrix) — every score below the k-th smallest, then the ties at it from
    the lowest column on; NaN last.

    Usually no tie straddles the k-th score and every row holds exactly k scores at or below it: that
    mask is the answer (it is checked, not assumed), one comparison after the selection. The selection
    runs on the scores rounded to float32 (1.3× faster than on float64): rounding is monotone, so a
    float32 threshold below which lie exactly k scores of a row has below it the k lowest float64 ones."""
    if k <= 0:
        return torch.zeros_like(score, dtype=torch.bool)
    coarse = score.float()
    kth = torch.kthvalue(coarse, k, dim=1, keepdim=True).values
    mask = coarse <= kth  # NaN compares false: ranked last
    del coarse
    tied = (mask.view(torch.uint8).sum(1, dtype=torch.int32) != k).nonzero().flatten()
    if len(tied):  # rows where ties (in float32 or in the scores) straddle the k-th: rank those exactly
        rows = score[tied].nan_to_num(nan=float("inf"))
        kth = torch.kthvalue(rows, k, dim=1, keepdim=True).values
        below, ties = rows < kth, rows == kth
        need = k - below.sum(1, keepdim=True)
        mask[tied] = below | (ties & (ties.cumsum(1) <= need))
    return mask


def prune_magnitude(weight: torch.Tensor, sparsity: float, nm: tuple[int, int] | None = None) -> torch.Tensor:
    w = weight.float()
    return w.masked_fill(prune_mask(w.abs(), sparsity, nm), 0.0)


def wanda_score(weight: torch.Tensor, input_sq_norms: torch.Tensor) -> torch.Tensor:
    """Wanda's importance |W_ij| · ‖X_j‖₂ (Sun et al., ICLR 2024, §3, eq. 1), from Σ x_j² per input column.

    Formed in float64 so that summation-order noise between devices cannot reorder it.
    """
    score = weight.to(torch.float64, copy=True).abs_()  # one new tensor, whatever the weight's dtype
    return score.mul_(input_sq_norms.double().sqrt().unsqueeze(0))


def prune_wanda(
    weight: torch.Tensor, input_sq_norms: torch.Tensor, sparsity: float, nm: tuple[int, int] | None = None
) -> torch.Tensor:
    """``input_sq_norms[j]`` = Σ over calibration tokens of x_j² (padding excluded)."""
    w = weight.float()
    return w.masked_fill(prune_mask(wanda_score(w, input_sq_norms), sparsity, nm), 0.0)


def _saliency(w: torch.Tensor, hinv_diag: torch.Tensor) -> torch.Tensor:
    """SparseGPT's score w² / [H⁻¹]_jj²: the OBS error of zeroing each weight on its own."""
    return w**2 / hinv_diag.unsqueeze(0) ** 2


def prune_sparsegpt(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: float,
    nm: tuple[int, int] | None = None,
    blocksize: int = 128,
    damp: float = 0.01,
) -> tuple[torch.Tensor, dict, torch.Tensor | None]:
    """Returns the pruned weight, info ``{"damp": used, "fallback": None | reason}`` and each row's
    error (w − ŵ)H(w − ŵ)ᵀ from the sweep (None after a fallback)."""
    w_t = transposed_copy(weight)  # the sweep's layout (obs.py): column j of W is row j
    hinv, info, ridge = inverse_hessian_factor(hessian, w_t.t(), damp)
    if hinv is None:  # Cholesky failed at every damping: fall back to Wanda's diagonal rule
        return prune_wanda(weight, torch.diag(hessian), sparsity, nm), info, None
    mask_t = torch.zeros_like(w_t, dtype=torch.bool)  # in × out, like w_t
    out = w_t.shape[1]

    def choose(block: Block, i: int) -> torch.Tensor:
        """The column with its pruned weights zeroed. The mask of a block (unstructured) or of M columns
        (N:M) is chosen on reaching its first column, from the weights as updated so far (§3.2)."""
        col = block.start + i
        if nm is None and i == 0:
            # This block's share of floor(out · d_in · s), the lowest saliencies over all its rows
            k = int(out * block.end * sparsity) - int(out * block.start * sparsity)
            score = _saliency(block.w.t(), torch.diag(block.hinv))  # out × width
            mask_t[block.start : block.end] = lowest_k(score.reshape(1, -1), k).reshape(score.shape).t()
        if nm is not None and i % nm[1] == 0:
            score = _saliency(block.w[i : i + nm[1]].t(), torch.diag(block.hinv)[i : i + nm[1]])
            mask_t[col : col + nm[1]] = prune_mask(score, 0.0, nm).t()
        return block.w[i].masked_fill(mask_t[col], 0.0)

    loss = sweep_columns(w_t, hinv, blocksize, choose)
    w = w_t.t().masked_fill_(mask_t.t(), 0.0)
    return w, info, undamped_error(loss, weight, w, ridge, torch.diag(hessian) == 0)
