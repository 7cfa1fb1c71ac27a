"""Pruning one weight matrix W (out × in) given its input statistics.

- magnitude: drop the smallest |W| in each output row;
- Wanda (Sun et al., ICLR 2024): score |W_ij| · ‖X_j‖₂, drop the lowest per output row;
- SparseGPT (Frantar & Alistarh, ICML 2023): OBS-style column-by-column pruning with the inverse
  Hessian H = XXᵀ, updating the remaining weights to compensate, in blocks of columns.

Unstructured sparsity s is exact per output row: floor(d_in · s) zeros (a rank selection, not a
threshold, so ties never prune one too many). N:M keeps N of every M consecutive input weights.
Ranks come from a stable sort, so ties go to the lower column index on every device: given the same
scores, CPU and GPU prune the same weights.
"""

from __future__ import annotations

import torch

from cola_core.compress.linalg import inverse_hessian_factor


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
    k = int(d_in * sparsity)
    if k == 0:
        return mask
    return mask.scatter_(1, _lowest(score, k), True)


def prune_magnitude(weight: torch.Tensor, sparsity: float, nm: tuple[int, int] | None = None) -> torch.Tensor:
    w = weight.float()
    return w.masked_fill(prune_mask(w.abs(), sparsity, nm), 0.0)


def prune_wanda(
    weight: torch.Tensor, input_sq_norms: torch.Tensor, sparsity: float, nm: tuple[int, int] | None = None
) -> torch.Tensor:
    """``input_sq_norms[j]`` = Σ over calibration tokens of x_j² (padding excluded).

    The score is formed in float64 so that summation-order noise between devices cannot reorder it.
    """
    w = weight.float()
    score = w.double().abs() * input_sq_norms.double().sqrt().unsqueeze(0)
    return w.masked_fill(prune_mask(score, sparsity, nm), 0.0)


def prune_sparsegpt(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: float,
    nm: tuple[int, int] | None = None,
    blocksize: int = 128,
    damp: float = 0.01,
) -> tuple[torch.Tensor, dict]:
    """Returns the pruned weight and info ``{"damp": used, "fallback": None | reason}``."""
    w = weight.float().clone()
    d_in = w.shape[1]
    hinv, info = inverse_hessian_factor(hessian, w, damp)
    if hinv is None:  # Cholesky failed at every damping: fall back to Wanda's diagonal rule
        return prune_wanda(weight, torch.diag(hessian), sparsity, nm), info
    mask = torch.zeros_like(w, dtype=torch.bool)
    for i1 in range(0, d_in, blocksize):
        i2 = min(i1 + blocksize, d_in)
        w1 = w[:, i1:i2].clone()
        h1 = hinv[i1:i2, i1:i2]
        err1 = torch.zeros_like(w1)
        if nm is None:
            # Per-row quota of this block, so each row ends at exactly floor(d_in · s) zeros.
            k = int(i2 * sparsity) - int(i1 * sparsity)
            if k > 0:
                score = w1**2 / torch.diag(h1).unsqueeze(0) ** 2
                mask[:, i1:i2].scatter_(1, _lowest(score, k), True)
        for i in range(i2 - i1):
            col = i1 + i
            if nm is not None and i % nm[1] == 0:
                score = w1[:, i : i + nm[1]] ** 2 / torch.diag(h1)[i : i + nm[1]].unsqueeze(0) ** 2
                mask[:, col : col + nm[1]] = prune_mask(score, 0.0, nm)
            q = w1[:, i].masked_fill(mask[:, col], 0.0)
            e = (w1[:, i] - q) / h1[i, i]
            w1[:, i:] -= e.unsqueeze(1) * h1[i, i:].unsqueeze(0)
            w1[:, i] = q
            err1[:, i] = e
        w[:, i1:i2] = w1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return w.masked_fill(mask, 0.0), info
