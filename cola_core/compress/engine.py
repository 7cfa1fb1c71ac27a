"""Layer-wise compression of a causal LM with a given calibration set.

For each decoder layer in order (one on the compute device at a time, the rest on CPU):
0. the method's layer-level step, if its entry has one (AWQ: search and fold per-channel scales);
1. replay the captured inputs through the still-dense layer, collecting fp32 statistics of every
   linear's input with padding masked out (the full Hessian if the method needs it, else a token
   sample for the error) and each linear's output norm; linears fed the same tensor (q/k/v, gate/up)
   share one statistic (statistics.py);
2. compress each linear with the method's per-matrix function, from its registry entry (methods.py) —
   the linears sharing a Hessian in one call where the method is row-wise — and measure its error;
3. replay again through the compressed layer: its outputs are the next layer's inputs, so later
   layers see the errors of earlier ones (the sequential scheme of SparseGPT/GPTQ/Wanda); the last
   layer's outputs feed nothing and are not computed.
Embeddings, lm_head, norms, biases and routers are never touched. A mixture-of-experts layer's fused
experts are split into linears while the layer is compressed (experts.py), so every expert is
compressed by every method, from the statistics of the tokens routed to it (or of every token).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from cola_core.compress.capture import LayerInputs, capture_layer_inputs, run_layer
from cola_core.compress.config import CompressConfig
from cola_core.compress.experts import split_experts
from cola_core.compress.methods import Compressed, compression_method
from cola_core.compress.owl import owl_schedule
from cola_core.compress.quantization import QuantResult
from cola_core.compress.statistics import (
    Stats,
    find_linears,
    find_routers,
    layer_statistics,
    set_weight,
    weight_of,
)
from cola_core.errors import ColaError
from cola_core.models.architecture import decoder_layers
from cola_core.models.loading import pick_device


class Cancelled(ColaError):
    """The caller asked to stop; raised between layers, before the next one is touched."""


@dataclass
class CompressionResult:
    layers: list[dict[str, Any]]
    quantized: dict[str, QuantResult] = field(default_factory=dict)  # full linear name → codes/scales
    device: str = "cpu"
    seconds: float = 0.0


def compress_linear(w: torch.Tensor, st: Stats, config: CompressConfig) -> Compressed:
    """One weight matrix compressed by the configured method: (new weight, codes or None, report info)."""
    return compression_method(config.method).compress(w, st, config)


def compress_layer(
    layer: torch.nn.Module,
    inputs: LayerInputs,
    config: CompressConfig,
    quantized: dict[str, QuantResult] | None = None,
    prefix: str = "",
) -> dict[str, Any]:
    """The method's layer-level step (if any), statistics from one replay of the still-dense layer, then
    every linear compressed in place; returns the report. With ``config.quantize`` the pruned layer is
    then quantized in a second stage (new statistics from a replay of the pruned layer, pruned weights
    kept at zero); each linear's report gains the quantization stage under ``"quantized"``."""
    if config.quantize is None:
        return _compress_stage(layer, inputs, config, quantized, prefix)
    report = _compress_stage(layer, inputs, config, None, prefix)
    second = _compress_stage(layer, inputs, config.quantizer(), quantized, prefix)
    for name, lin in report["linears"].items():
        lin["quantized"] = second["linears"][name]
        lin["sparsity"] = second["linears"][name]["sparsity"]
    return report | {k: v for k, v in second.items() if k != "linears"}


def _compress_stage(
    layer: torch.nn.Module,
    inputs: LayerInputs,
    config: CompressConfig,
    quantized: dict[str, QuantResult] | None,
    prefix: str,
) -> dict[str, Any]:
    linears = find_linears(layer)
    for name, module in linears.items():
        config.check_width(f"layer {prefix} {name}", weight_of(module).shape[1])
    method = compression_method(config.method)
    prepared = method.prepare(layer, inputs, config) if method.prepare else None
    full = method.statistic(config) == "hessian"
    stats, leader, experts = layer_statistics(layer, linears, inputs, full, config)
    report: dict[str, Any] = {"linears": {}}
    if experts:
        report["experts"] = experts
    if prepared is not None:
        report[method.name] = prepared
    # The OBS sweeps (a Hessian) of a row-wise method run once for the rows of every linear sharing the
    # statistic — a sweep's cost is mostly per column; the others, which gain nothing from it, take one
    # linear at a time (smaller temporaries).
    stack = full and method.is_rowwise(config)
    shared: dict[str, list[str]] = {}
    for name in linears:
        shared.setdefault(leader[name] if stack else name, []).append(name)
    done: dict[str, dict[str, Any]] = {}
    for names in shared.values():
        lead = leader[names[0]]
        st = stats[lead]
        # a copy of the weights, which the report's error compares against
        parts = [weight_of(linears[n]) for n in names]
        w = (torch.cat(parts) if len(parts) > 1 else parts[0]).to(torch.float32, copy=len(parts) == 1)
        new, q, info, row_error = compress_linear(w, st, config)
        start = 0
        for name, part in zip(names, parts, strict=True):
            rows = slice(start, start + len(part))
            start = rows.stop
            set_weight(linears[name], new[rows])
            if q is not None and quantized is not None:
                # The codes suffice (no second copy of the model), kept on the CPU like the weights: on a
                # GPU they would pile up layer after layer (1 byte per weight).
                quantized[f"{prefix}.{name}"] = replace(
                    q,
                    weight=None,
                    row_error=None,
                    codes=q.codes[rows].cpu(),
                    scales=q.scales[rows].cpu(),
                    zeros=q.zeros[rows].cpu(),
                    group_index=q.group_index.cpu(),
                )
            error = st.relative_error(name, w[rows], new[rows], None if row_error is None else row_error[rows])
            done[name] = {
                "shape": [len(part), w.shape[1]],
                "sparsity": float((new[rows] == 0).float().mean()),
                "relative_error": error,
                "shares_statistics_with": lead if lead != name else None,
                **info,
            }
    report["linears"] = {name: done[name] for name in linears}
    return report


def _return_freed_memory() -> None:
    """Hand the pages freed inside glibc's heap back to the OS (``malloc_trim``), once per layer.

    Measured (issue #33): RSS grew ~110 MB per layer of a 1024-wide model under GPTQ although only the
    codes are kept — glibc raises its mmap threshold after each large free, so later tens-of-MB
    temporaries land on a heap that fragments. A fixed 128 KiB threshold (``mallopt``) bounded that,
    at the price of faulting in fresh pages for every large temporary: 27–52% of the whole run, a third
    of it in the kernel. Trimming once a layer is done bounds the growth the same way and lets each
    layer reuse its own freed memory. No-op where glibc is absent."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def compress_model(
    model: torch.nn.Module,
    calibration: dict[str, torch.Tensor],
    config: CompressConfig,
    progress: Callable[[int, int, dict], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    keep_codes: bool = True,
) -> CompressionResult:
    """Compress ``model`` in place with ``calibration`` (``input_ids``/``attention_mask`` tensors).
    ``keep_codes``: keep each quantized linear's integer codes, scales and zero points in the result
    (what the compressed-tensors writer packs); without them a run holds no second copy of the model."""
    config.validate()
    t0 = time.perf_counter()
    device = pick_device(config.device)
    ids = calibration["input_ids"]
    mask = calibration.get("attention_mask", torch.ones_like(ids))
    if ids.dim() != 2 or len(ids) == 0:
        raise ColaError("calibration input_ids must be a non-empty (n, seqlen) tensor")
    vocab = model.get_input_embeddings().weight.shape[0]
    if int(ids.max()) >= vocab:
        raise ColaError(
            f"calibration token id {int(ids.max())} is outside the model's vocabulary of {vocab}; it was tokenized for another model"
        )
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    layers = decoder_layers(model)
    for li, layer in enumerate(layers):  # every shape check before any weight changes
        with split_experts(layer):
            for name, module in find_linears(layer).items():
                config.check_width(f"layer {li} {name}", weight_of(module).shape[1])
    result = CompressionResult([], device=str(device))
    try:
        inputs = capture_layer_inputs(model, ids, mask, config.batch_tokens, device)
        per_layer = [config] * len(layers)
        if config.owl:
            sparsities, ratios = owl_schedule(layers, inputs, config, device)
            per_layer = [replace(config, sparsity=s) for s in sparsities]
        for li, layer in enumerate(layers):
            if should_cancel and should_cancel():
                raise Cancelled(f"cancelled before layer {li} of {len(layers)}")
            lt = time.perf_counter()
            home = next(layer.parameters()).device
            layer.to(device)
            with split_experts(layer):  # a MoE layer's experts as linears while it is compressed
                report = compress_layer(
                    layer, inputs, per_layer[li], result.quantized if keep_codes else None, prefix=str(li)
                )
                if li + 1 < len(layers):  # the last layer's outputs feed nothing
                    inputs.hidden = run_layer(layer, inputs)
            report["layer"] = li
            if routers := find_routers(layer):
                report["ignored"] = routers
            if config.owl:
                report["target_sparsity"], report["outlier_ratio"] = sparsities[li], ratios[li]
            layer.to(home)
            _return_freed_memory()
            report["seconds"] = time.perf_counter() - lt
            result.layers.append(report)
            if progress:
                progress(li + 1, len(layers), report)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    result.seconds = time.perf_counter() - t0
    return result
