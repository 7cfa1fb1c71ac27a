"""The damped inverse-Hessian factor shared by SparseGPT and GPTQ, with stepwise damping escalation."""

from __future__ import annotations

import torch

DAMP_STEPS = (1.0, 10.0, 100.0)  # multiples of the requested damping tried in turn


def inverse_hessian_factor(
    hessian: torch.Tensor, weight: torch.Tensor, damp: float
) -> tuple[torch.Tensor | None, dict]:
    """Upper Cholesky factor of (H + λI)⁻¹, the form the OBS column updates use.

    Dead inputs (zero diagonal) get a unit diagonal and their weights are zeroed in ``weight``
    (in place), as in the reference implementations. If the factorisation fails, the damping is
    raised tenfold, twice; if it still fails, returns None and the caller falls back.
    """
    h = hessian.float().clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    weight[:, dead] = 0.0
    mean_diag = torch.diag(h).mean()
    eye = torch.eye(len(h), dtype=h.dtype, device=h.device)
    for step in DAMP_STEPS:
        lam = damp * step
        try:
            chol = torch.linalg.cholesky(h + lam * mean_diag * eye)
            hinv = torch.linalg.cholesky(torch.cholesky_inverse(chol), upper=True)
        except torch.linalg.LinAlgError:
            continue
        if torch.isfinite(hinv).all():
            return hinv, {"damp": lam, "fallback": None if step == 1.0 else f"damping raised to {lam:g}"}
    return None, {"damp": None, "fallback": "Cholesky failed at every damping; used the diagonal rule"}
