"""OWL: outlier-weighted layer-wise sparsity (Yin et al., ICML 2024, "Outlier Weighed Layerwise
Sparsity (OWL): A Missing Secret Sauce for Pruning LLMs to High Sparsity").

Layers that hold more activation outliers are pruned less. For each decoder layer, the outlier ratio
is the share of Wanda scores |W_ij|·‖X_j‖₂ (over all of the layer's linears) above M × their mean,
measured on the calibration data flowing through the dense model. The ratios are rescaled to a
spread of 2λ around the target, so the mean per-layer sparsity equals the target:
    keep_l = (D_l − min D) / (max D − min D) · 2λ,   keep_l ← keep_l − mean(keep) + (1 − s),
    sparsity_l = 1 − keep_l.
"""

from __future__ import annotations

import torch

from cola_core.compress.capture import LayerInputs, run_layer
from cola_core.compress.config import CompressConfig
from cola_core.compress.experts import split_experts
from cola_core.compress.pruning import wanda_score
from cola_core.compress.statistics import find_linears, layer_statistics, weight_of


def outlier_ratio(layer: torch.nn.Module, inputs: LayerInputs, config: CompressConfig) -> float:
    """Share of the layer's Wanda scores above ``config.owl_m`` × their mean (one dense replay)."""
    linears = find_linears(layer)
    stats, leader, _ = layer_statistics(layer, linears, inputs, False, config)  # every expert has its statistic
    # per token: an expert seen by few tokens is not scored smaller for it (a dense layer's linears all
    # see the same tokens, where this scale changes no ratio)
    scores = [
        wanda_score(weight_of(m), stats[leader[n]].sq / max(stats[leader[n]].tokens, 1)).flatten()
        for n, m in linears.items()
    ]
    flat = torch.cat(scores)
    return float((flat > config.owl_m * flat.mean()).double().mean())


def layer_sparsities(ratios: list[float], target: float, lam: float) -> list[float]:
    """Per-layer sparsity from the outlier ratios: mean ``target``, spread at most 2λ, more outliers → less pruning."""
    d = torch.tensor(ratios, dtype=torch.float64)
    span = float(d.max() - d.min())
    keep = (d - d.min()) / span * 2 * lam if span > 0 else torch.zeros_like(d)
    keep = keep - keep.mean() + (1 - target)
    return [float(1 - k) for k in keep]


def owl_schedule(
    layers: torch.nn.ModuleList, inputs: LayerInputs, config: CompressConfig, device: torch.device
) -> tuple[list[float], list[float]]:
    """(per-layer sparsity, per-layer outlier ratio) from a dense pass over ``layers``; ``inputs`` is not changed."""
    flowing = LayerInputs(list(inputs.hidden), inputs.kwargs, inputs.masks)
    ratios = []
    for layer in layers:
        home = next(layer.parameters()).device
        layer.to(device)
        with split_experts(layer):
            ratios.append(outlier_ratio(layer, flowing, config))
            flowing.hidden = run_layer(layer, flowing)
        layer.to(home)
    return layer_sparsities(ratios, config.sparsity, config.owl_lambda), ratios
