"""The damped inverse-Hessian factor shared by SparseGPT and GPTQ, with stepwise damping escalation."""

from __future__ import annotations

from typing import NamedTuple

import torch

DAMP_STEPS = (1.0, 10.0, 100.0)  # multiples of the requested damping tried in turn


class Factor(NamedTuple):
    hinv: torch.Tensor | None  # upper Cholesky factor of (H + ridge·I)⁻¹; None if every damping failed
    info: dict  # what the report shows: the damping used, the fallback taken
    ridge: float  # what was added to H's diagonal: λ · mean diag H


def inverse_hessian_factor(hessian: torch.Tensor, weight: torch.Tensor, damp: float) -> Factor:
    """Upper Cholesky factor of (H + λ·mean(diag H)·I)⁻¹, the form the OBS column updates use.

    Dead inputs (zero diagonal) get a unit diagonal and their weights are zeroed in ``weight``
    (in place), as in the reference implementations. If the factorisation fails, the damping is
    raised tenfold, twice; if it still fails, returns None and the caller falls back.
    """
    h = hessian.float().clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    weight[:, dead] = 0.0
    mean_diag = float(torch.diag(h).mean())
    diagonal = h.diagonal().clone()
    for step in DAMP_STEPS:  # at most three d × d matrices alive at once (a 14,336-wide H is 0.8 GB)
        lam = damp * step
        h.diagonal().copy_(diagonal + lam * mean_diag)
        chol, failed = torch.linalg.cholesky_ex(h)
        if failed.item():
            continue
        hinv = torch.cholesky_inverse(chol)
        del chol
        hinv, failed = torch.linalg.cholesky_ex(hinv, upper=True)
        if not failed.item() and torch.isfinite(hinv).all():
            fallback = None if step == 1.0 else f"damping raised to {lam:g}"
            return Factor(hinv, {"damp": lam, "fallback": fallback}, lam * mean_diag)
    return Factor(None, {"damp": None, "fallback": "Cholesky failed at every damping; used the diagonal rule"}, 0.0)
