"""The compression methods: one registry entry per method, saying what it is, which statistics of the
calibration inputs it reads, which settings it accepts, and the function that compresses one matrix.

| method    | kind         | needs        | paper                                          |
|-----------|--------------|--------------|------------------------------------------------|
| magnitude | pruning      | none         | Han et al., NeurIPS 2015                       |
| wanda     | pruning      | column norms | Sun et al., ICLR 2024, §3                      |
| sparsegpt | pruning      | hessian      | Frantar & Alistarh, ICML 2023, §3              |
| rtn       | quantization | none         | round to nearest; the baseline GPTQ beats      |
| gptq      | quantization | hessian      | Frantar et al., ICLR 2023, §4                  |
| awq       | quantization | none¹        | Lin et al., MLSys 2024, §3.2 (awq.py)          |

¹ AWQ searches and folds its scales in a layer-level step (``prepare``) before statistics are
collected, then rounds the scaled weights with RTN, or with GPTQ (``awq_quantizer="gptq"``), in which
case it needs the Hessian: an entry's ``needs`` may be a function of the settings
(:meth:`CompressionMethod.statistic`).

Nothing else names a method: config.py validates a run's settings from its entry (``kind``,
``patterns``, ``bits``), the engine collects the statistics the entry ``needs`` and calls its
``compress`` on every linear. Adding a method is a pure tensor function beside the others
(pruning.py, quantization.py or a file of its own), a three-line adapter to the common signature
below, and one entry in ``REGISTRY``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, NamedTuple

import torch

from cola_core.compress.awq import prepare_awq
from cola_core.compress.capture import LayerInputs
from cola_core.compress.pruning import prune_magnitude, prune_sparsegpt, prune_wanda
from cola_core.compress.quantization import QuantResult, quantize_gptq, quantize_rtn
from cola_core.compress.statistics import Stats
from cola_core.errors import ColaError

if TYPE_CHECKING:  # config.py validates settings from this registry, so it imports it, not the reverse
    from cola_core.compress.config import CompressConfig as Settings

Kind = Literal["pruning", "quantization"]
# What a method reads of its linear's inputs X: nothing, the column norms Σ x_j² (``Stats.sq``), or
# the Hessian H = XXᵀ/n over every calibration token (``Stats.hessian()``; otherwise only a sample of
# about ``error_tokens`` tokens is kept, to measure the reconstruction error).
Statistic = Literal["none", "column norms", "hessian"]


class Compressed(NamedTuple):
    """One compressed matrix: its new weight (out × in, fp32), the integer codes of a quantized one,
    what the report shows of it (``fallback``, and ``damp`` where a Hessian was inverted), and each
    row's error (w − ŵ)H(w − ŵ)ᵀ where the method knows it already (the OBS sweeps); else the engine
    measures it."""

    weight: torch.Tensor
    quantized: QuantResult | None
    info: dict
    row_error: torch.Tensor | None = None


# A row-wise method compresses each output row from itself and the statistic alone, so the engine may
# stack the rows of the linears that share a statistic (q/k/v, gate/up) into one call; an entry says
# whether it is (``CompressionMethod.is_rowwise``).
CompressMatrix = Callable[[torch.Tensor, Stats, "Settings"], Compressed]
# A layer-level step run once per decoder layer before its statistics are collected, on the compute
# device, with the dense layer and its captured inputs: it may change the weights in place (AWQ folds
# its scales) and returns what the layer's report shows of it (JSON-serialisable).
PrepareLayer = Callable[[torch.nn.Module, LayerInputs, "Settings"], dict]


@dataclass(frozen=True)
class CompressionMethod:
    name: str
    kind: Kind
    needs: Statistic | Callable[[Settings], Statistic]  # what it reads, or how the settings decide it
    compress: CompressMatrix  # (weight, its input statistics, settings) → Compressed
    description: str  # one line, with the paper
    patterns: tuple[str, ...] = ()  # pruning: the layouts it prunes to, "unstructured" and/or "N:M"
    bits: range = range(0)  # quantization: the bit widths it accepts
    prepare: PrepareLayer | None = None  # runs on each dense layer first; its report goes under ``name``
    title: str = ""  # as people write it ("SparseGPT"), for readable setting names; default: the name
    rowwise: bool | Callable[[Settings], bool] = True  # each output row compressed on its own

    def statistic(self, settings: Settings) -> Statistic:
        """The statistic the engine collects for this method under ``settings``."""
        return self.needs(settings) if callable(self.needs) else self.needs

    def is_rowwise(self, settings: Settings) -> bool:
        """Whether each output row's result depends on that row and the statistic alone under
        ``settings`` (the engine then stacks linears sharing a statistic into one call)."""
        return self.rowwise(settings) if callable(self.rowwise) else self.rowwise


def _magnitude(weight: torch.Tensor, stats: Stats, s: Settings) -> Compressed:
    return Compressed(prune_magnitude(weight, s.sparsity, s.nm), None, {"fallback": None})


def _wanda(weight: torch.Tensor, stats: Stats, s: Settings) -> Compressed:
    return Compressed(prune_wanda(weight, stats.sq, s.sparsity, s.nm), None, {"fallback": None})


def _sparsegpt(weight: torch.Tensor, stats: Stats, s: Settings) -> Compressed:
    new, info, row_error = prune_sparsegpt(weight, stats.hessian(), s.sparsity, s.nm, s.blocksize, s.damp)
    return Compressed(new, None, info, row_error)


def _rtn(weight: torch.Tensor, stats: Stats, s: Settings) -> Compressed:
    q = quantize_rtn(weight, s.bits, s.group_size, s.symmetric)
    return Compressed(q.weight, q, q.info)


def _gptq(weight: torch.Tensor, stats: Stats, s: Settings) -> Compressed:
    hessian = stats.hessian()
    keep = weight != 0 if s.keep_zeros else None  # after pruning: the mask survives the OBS updates
    q = quantize_gptq(weight, hessian, s.bits, s.group_size, s.symmetric, s.act_order, s.blocksize, s.damp, keep)
    return Compressed(q.weight, q, q.info, q.row_error)


def _awq(weight: torch.Tensor, stats: Stats, s: Settings) -> Compressed:
    return _gptq(weight, stats, s) if s.awq_quantizer == "gptq" else _rtn(weight, stats, s)


def _nm(s: Settings) -> bool:
    return s.nm is not None


def _awq_needs(s: Settings) -> Statistic:
    return "hessian" if s.awq_quantizer == "gptq" else "none"  # GPTQ rounds through H⁻¹


_PRUNING_PATTERNS = ("unstructured", "N:M")
_BITS = range(2, 9)

REGISTRY: Mapping[str, CompressionMethod] = MappingProxyType(
    {
        m.name: m
        for m in (
            CompressionMethod(
                "magnitude",
                "pruning",
                "none",
                _magnitude,
                "drop the smallest |W| in each output row (Han et al., NeurIPS 2015)",
                patterns=_PRUNING_PATTERNS,
                title="Magnitude",
            ),
            CompressionMethod(
                "wanda",
                "pruning",
                "column norms",
                _wanda,
                "Wanda: drop the lowest |W_ij|·‖X_j‖₂ in each output row (Sun et al., ICLR 2024)",
                patterns=_PRUNING_PATTERNS,
                title="Wanda",
            ),
            CompressionMethod(
                "sparsegpt",
                "pruning",
                "hessian",
                _sparsegpt,
                "SparseGPT: prune column by column, updating the rest through H⁻¹ (Frantar & Alistarh, ICML 2023)",
                patterns=_PRUNING_PATTERNS,
                title="SparseGPT",
                rowwise=_nm,  # unstructured: a block's mask is chosen over all its rows
            ),
            CompressionMethod(
                "rtn",
                "quantization",
                "none",
                _rtn,
                "RTN: round every weight to the nearest point of its group's grid, no calibration data",
                bits=_BITS,
                title="RTN",
            ),
            CompressionMethod(
                "gptq",
                "quantization",
                "hessian",
                _gptq,
                "GPTQ: quantize column by column, spreading each error through H⁻¹ (Frantar et al., ICLR 2023)",
                bits=_BITS,
                title="GPTQ",
            ),
            CompressionMethod(
                "awq",
                "quantization",
                _awq_needs,
                _awq,
                "AWQ: scale salient input channels by mean|x|^α before rounding (Lin et al., MLSys 2024)",
                bits=_BITS,
                prepare=prepare_awq,
                title="AWQ",
            ),
        )
    }
)


def method_names(kind: Kind | None = None) -> tuple[str, ...]:
    """Names in the registry, in its order; only those of ``kind`` if given."""
    return tuple(name for name, m in REGISTRY.items() if kind is None or m.kind == kind)


def compression_method(name: str) -> CompressionMethod:
    """The registry entry called ``name``; a ColaError naming the choices if there is none."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ColaError(f"unknown method '{name}': choose one of {', '.join(REGISTRY)}") from None
