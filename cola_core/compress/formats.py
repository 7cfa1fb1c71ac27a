"""On-disk formats of a compressed model (``--format``).

- ``dense`` (the default): plain ``from_pretrained`` weights — quantized linears hold their dequantized
  values; no codes are kept (save.py). Any tool reads it; nothing is smaller.
- ``compressed-tensors``: the checkpoint format that llm-compressor writes and vLLM serves
  (https://github.com/vllm-project/compressed-tensors, version 0.19.0), which transformers also loads
  through its compressed-tensors integration. Quantized linears are stored ``pack-quantized``: the
  b-bit codes packed into int32 words (``weight_packed``), a scale per group or row (``weight_scale``),
  for an asymmetric grid the zero points packed along the output dimension (``weight_zero_point``),
  and ``weight_shape``; ``config.json`` carries ``quantization_config`` as llm-compressor writes it
  (one config group targeting ``Linear``, unquantized linears such as ``lm_head`` in ``ignore``,
  format ``pack-quantized``, status ``compressed``). Pruned models are stored dense with a
  ``sparsity_config`` (format ``dense``; the sparse-bitmask formats are legacy in 0.19.0).

The library does the packing: our codes go through its ``PackedQuantizationCompressor`` and its
``ModelCompressor`` writes the config. Its integer grid is signed — codes in [−2^(b−1), 2^(b−1)−1],
weight = (q − zp)·scale — while ours is unsigned — codes c in [0, 2^b − 1], weight = (c − z)·scale —
so q = c − 2^(b−1) and zp = z − 2^(b−1) give the same weights (symmetric: z = 2^(b−1), zp = 0, which
the format leaves out). With an fp32 model the scales are stored fp32 and the loaded weights equal
ours bit for bit; a bf16/fp16 model stores its scales in that dtype, as llm-compressor does.

vLLM's kernels for this scheme (``CompressedTensorsWNA16``) take 4 and 8 bits; the library packs
1..8, so 2, 3, 5, 6 and 7-bit checkpoints load in transformers but not in vLLM. Current vLLM (since
about 0.22) refuses a ``sparsity_config`` that names ``targets`` ("Sparsity support has been removed
from compressed-tensors"), so the sparsity metadata gives the structure and global sparsity without
targets; which linears were pruned is in ``compression_report.json``. See docs/compression.md.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch

from cola_core.compress.config import CompressConfig
from cola_core.compress.engine import CompressionResult
from cola_core.compress.experts import SplitExperts, split_all_experts
from cola_core.compress.methods import compression_method
from cola_core.compress.quantization import QuantResult
from cola_core.compress.statistics import find_linears, weight_of
from cola_core.errors import ColaError
from cola_core.models.architecture import decoder_layers, fused_experts

if TYPE_CHECKING:
    from compressed_tensors import ModelCompressor
    from compressed_tensors.config import SparsityCompressionConfig
    from compressed_tensors.quantization import QuantizationScheme

FORMATS = ("dense", "compressed-tensors")
DEFAULT_FORMAT = "dense"
VLLM_BITS = (4, 8)  # vLLM's CompressedTensorsWNA16 kernels (WNA16_SUPPORTED_BITS)


def _library() -> SimpleNamespace:
    """The parts of compressed-tensors used here, imported on first use (2–3 s; the dense format does
    without), with an actionable message when the package is missing."""
    try:
        import compressed_tensors
        from compressed_tensors.compressors import ModelCompressor, PackedQuantizationCompressor
        from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32
        from compressed_tensors.config import CompressionFormat, DenseSparsityConfig
        from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme, QuantizationStatus
    except ImportError:
        raise ColaError(
            "--format compressed-tensors needs the compressed-tensors package: pip install compressed-tensors==0.19.0"
        ) from None
    return SimpleNamespace(
        version=compressed_tensors.__version__,
        base=importlib.import_module("compressed_tensors.base"),  # the package's `base` attribute is config.base
        ModelCompressor=ModelCompressor,
        PackedQuantizationCompressor=PackedQuantizationCompressor,
        unpack_from_int32=unpack_from_int32,
        CompressionFormat=CompressionFormat,
        DenseSparsityConfig=DenseSparsityConfig,
        QuantizationArgs=QuantizationArgs,
        QuantizationScheme=QuantizationScheme,
        QuantizationStatus=QuantizationStatus,
    )


def check_format(fmt: str) -> None:
    """A ColaError naming the choices unless ``fmt`` is one of FORMATS."""
    if fmt not in FORMATS:
        raise ColaError(f"unknown format '{fmt}': choose one of {', '.join(FORMATS)}")


def quantization_scheme(bits: int, group_size: int, symmetric: bool, act_order: bool) -> QuantizationScheme:
    """The compressed-tensors scheme of our weight-only integer grid, for every ``Linear``; refuses
    (ColaError) what the library's ``pack-quantized`` compressor cannot pack. ``act_order`` is the
    library's ``weight`` ordering: our GPTQ keeps static, contiguous groups, so no g_idx is stored."""
    lib = _library()
    try:
        args = lib.QuantizationArgs(
            num_bits=bits,
            type="int",
            symmetric=symmetric,
            strategy="group" if group_size > 0 else "channel",
            group_size=group_size if group_size > 0 else None,
            actorder="weight" if act_order else None,
            dynamic=False,
        )
        scheme = lib.QuantizationScheme(targets=["Linear"], weights=args)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ColaError(f"compressed-tensors cannot describe {bits}-bit group size {group_size}: {exc}") from None
    if not lib.PackedQuantizationCompressor.can_compress(torch.nn.Linear, scheme):
        raise ColaError(
            f"compressed-tensors packs 1..8-bit integer weights (pack-quantized), not {bits}-bit; use --format dense"
        )
    return scheme


def check_compressed_tensors(config: CompressConfig, model: torch.nn.Module | None = None) -> None:
    """Everything ``--format compressed-tensors`` refuses, checked before any work: the bit width and
    grid (the library must pack them) and, given the model, linears the format can hold
    (``torch.nn.Linear``; GPT-2's transposed ``Conv1D`` is not one)."""
    _library()
    if not config.quantizes:  # stored dense, whatever the model
        return
    quantization_scheme(config.bits, config.group_size, config.symmetric, config.act_order)
    if model is None:
        return
    layers = decoder_layers(model)
    if any(fused_experts(layer) for layer in layers):
        if not config.symmetric:
            raise ColaError(
                "compressed-tensors: transformers 5.23 loads packed experts without their zero points, so an asymmetric "
                "mixture-of-experts checkpoint would load wrong; add --sym (llm-compressor's W4A16 is symmetric too)"
            )
        with split_all_experts(layers):
            expert_checkpoint_names(model)  # refuses families whose checkpoints keep experts fused
    for li, layer in enumerate(layers):
        for name, module in find_linears(layer).items():
            if not isinstance(module, torch.nn.Linear):
                raise ColaError(
                    f"compressed-tensors packs torch.nn.Linear weights; layer {li} {name} is a "
                    f"{type(module).__name__} ({type(model).__name__}): use --format dense"
                )


def serving_note(fmt: str, bits: int | None) -> str | None:
    """A line for the user when a compressed-tensors checkpoint loads in transformers but not in vLLM."""
    if fmt == "compressed-tensors" and bits is not None and bits not in VLLM_BITS:
        return f"vLLM serves pack-quantized {' and '.join(map(str, VLLM_BITS))}-bit weights: this {bits}-bit checkpoint loads in transformers only"
    return None


def serving_text(fmt: str, bits: int | None) -> str:
    """What can serve a checkpoint of this format and bit width, as far as it is known here: a
    sentence for the model card (vLLM itself was not run on this machine)."""
    if fmt == "dense":
        return (
            "Plain dense weights (dequantized, zeros kept as zeros): any tool that loads the base model loads this one."
        )
    if note := serving_note(fmt, bits):
        return note + "."
    if bits is None:
        return "Dense weights with sparsity metadata: transformers loads it; vLLM serves the weights as dense."
    return (
        f"Pack-quantized {bits}-bit weights (compressed-tensors): transformers loads them "
        "(`CompressedTensorsConfig(dequantize=True)` for an asymmetric grid); vLLM's WNA16 kernels take 4 and 8 bits."
    )


def _quantized_modules(
    model: torch.nn.Module, result: CompressionResult
) -> dict[str, tuple[torch.nn.Module, QuantResult]]:
    """Full module name → (module, its codes), from the engine's ``"<layer>.<linear>"`` keys."""
    layers = decoder_layers(model)
    names = {id(m): n for n, m in model.named_modules()}
    found = {}
    for key, q in result.quantized.items():
        li, _, linear = key.partition(".")
        module = find_linears(layers[int(li)])[linear]
        if not isinstance(module, torch.nn.Linear):
            raise ColaError(f"compressed-tensors packs torch.nn.Linear weights; {key} is a {type(module).__name__}")
        found[names[id(module)]] = (module, q)
    return found


def _pack(
    name: str, module: torch.nn.Linear, q: QuantResult, scheme: QuantizationScheme, lib: SimpleNamespace
) -> dict[str, torch.Tensor]:
    """One linear's compressed tensors, packed by the library from our codes; checks that they decode
    to our codes exactly and that our codes reproduce the module's weight."""
    bits, offset = scheme.weights.num_bits, 2 ** (scheme.weights.num_bits - 1)
    codes, scales, zeros, gidx = (t.detach().cpu() for t in (q.codes, q.scales, q.zeros, q.group_index))
    size = codes.shape[1] // scales.shape[1]
    if size != (scheme.weights.group_size or codes.shape[1]):
        raise ColaError(f"{name}: {scales.shape[1]} groups of {size} columns, not the run's group size")
    if not torch.equal(gidx, torch.arange(codes.shape[1]) // size):
        raise ColaError(f"{name}: its quantization groups are not contiguous; compressed-tensors 0.19 stores no g_idx")
    if int(codes.max()) >= 2**bits or (zeros != zeros.round()).any() or zeros.min() < 0 or zeros.max() >= 2**bits:
        raise ColaError(f"{name}: codes or zero points do not fit the {bits}-bit grid of this run's settings")
    if scheme.weights.symmetric and (zeros != offset).any():
        raise ColaError(f"{name}: a symmetric grid needs every zero point at {offset}")
    weight = (codes.float() - zeros[:, gidx]) * scales[:, gidx].float()  # our dequantization, fp32
    current = weight_of(module).detach().cpu()
    if not torch.equal(weight.to(current.dtype), current):
        raise ColaError(
            f"{name}: the quantized codes do not reproduce the model's weight; it changed after quantization"
        )
    state = {"weight": weight, "weight_scale": scales.float()}
    if not scheme.weights.symmetric:
        state["weight_zero_point"] = (zeros - offset).to(torch.int8)
    packed = lib.PackedQuantizationCompressor.compress(state, scheme)
    decoded = lib.unpack_from_int32(packed["weight_packed"], bits, codes.shape).to(torch.int16) + offset
    if not torch.equal(decoded, codes.to(torch.int16)):
        raise ColaError(f"{name}: compressed-tensors packed other codes than ours")  # not expected: fp32 round trip
    packed["weight_scale"] = packed["weight_scale"].to(current.dtype)  # llm-compressor: scales in the model's dtype
    return packed


def _read_back_config(
    model: torch.nn.Module, modules: list[torch.nn.Module], scheme: QuantizationScheme, lib: SimpleNamespace
) -> ModelCompressor:
    """The config through llm-compressor's own path: the scheme attached to each packed module, the
    ``QuantizationConfig`` read back from the model by ``ModelCompressor.from_pretrained_model`` (its
    config group and the ignore list of unquantized ``Linear`` layers, e.g. ``lm_head``); the
    attributes are removed again, so the caller's model is left as it was."""
    for m in modules:
        m.quantization_scheme = scheme
        m.quantization_status = lib.QuantizationStatus.COMPRESSED
    try:
        fmt = lib.CompressionFormat.pack_quantized.value
        return lib.ModelCompressor.from_pretrained_model(model, quantization_format=fmt)
    finally:
        for m in modules:
            del m.quantization_scheme, m.quantization_status


def _sparsity_config(
    model: torch.nn.Module, report: dict[str, Any], lib: SimpleNamespace
) -> SparsityCompressionConfig | None:
    """``sparsity_config`` of a pruned model stored dense: the N:M structure if every decoder linear
    keeps it (else ``unstructured``) and the share of zeros over all parameters, as llm-compressor
    measured it; no ``targets`` (current vLLM refuses them). None for a run that pruned nothing."""
    if compression_method(report["method"]).kind != "pruning" or not report.get("achieved_sparsity"):
        return None
    structure = "unstructured"
    pattern = report["settings"].get("pattern")
    if pattern:
        n, m = (int(x) for x in pattern.split(":"))
        weights = [weight_of(lin) for layer in decoder_layers(model) for lin in find_linears(layer).values()]
        if all(((w.reshape(w.shape[0], -1, m) == 0).sum(-1) >= m - n).all() for w in weights):
            structure = pattern
    params = list(model.parameters())
    zeros = sum(int((p == 0).sum()) for p in params)
    total = sum(p.numel() for p in params)
    return lib.DenseSparsityConfig(global_sparsity=zeros / total, sparsity_structure=structure)


def write_compressed_tensors(
    model: torch.nn.Module, result: CompressionResult, report: dict[str, Any], out: Path
) -> None:
    """Write ``model`` into the (empty) folder ``out`` in the compressed-tensors format: weights,
    ``config.json`` with ``quantization_config``. The model itself is not modified."""
    lib = _library()
    with split_all_experts(decoder_layers(model) if result.quantized else ()):  # packed experts: one linear each
        _write(model, result, report, out, lib)


def expert_checkpoint_names(model: torch.nn.Module) -> dict[str, str]:
    """Each split expert linear's name (``model.layers.0.mlp.experts.3.gate_proj``) → the name the
    family's checkpoints give that matrix (Mixtral: ``model.layers.0.block_sparse_moe.experts.3.w1``),
    learnt from transformers' own save-time conversion (``revert_weight_conversion``, the inverse of
    what ``from_pretrained`` applies): tiny marker tensors, one value per expert and projection, are
    reverted and read back. A family whose checkpoints keep the experts fused (gpt-oss) is refused:
    its packed experts would have nowhere to go."""
    from transformers.core_model_loading import revert_weight_conversion

    names: dict[str, str] = {}
    projections = ("gate_proj", "up_proj", "down_proj")
    for prefix, split in ((n, m) for n, m in model.named_modules() if isinstance(m, SplitExperts)):
        fused, experts = split.fused[0], split.num_experts
        if not fused.is_concatenated or fused.is_transposed or getattr(fused, "has_bias", False):
            raise ColaError(
                f"compressed-tensors: {type(fused).__name__} checkpoints keep their experts fused, so packed experts "
                "cannot be stored; use --format dense"
            )
        mark = torch.arange(experts, dtype=torch.float32)[:, None, None] * 3 + 1
        markers = {f"{prefix}.gate_up_proj": torch.cat([mark, mark + 1], 1), f"{prefix}.down_proj": mark + 2}
        for key, tensor in revert_weight_conversion(model, markers).items():
            value = int(tensor.flatten()[0])
            if key in markers or not torch.all(tensor == value):
                raise ColaError(
                    f"compressed-tensors: {type(model).__name__}'s checkpoints keep its experts fused ({key}); use --format dense"
                )
            expert, projection = divmod(value - 1, 3)
            names[f"{prefix}.{expert}.{projections[projection]}"] = key.removesuffix(".weight")
    return names


def _checkpoint_key(key: str, renamed: dict[str, str]) -> str:
    owner, _, tensor = key.rpartition(".")
    return f"{renamed[owner]}.{tensor}" if owner in renamed else key


def _write(model: torch.nn.Module, result: CompressionResult, report: dict[str, Any], out: Path, lib) -> None:
    state = dict(model.state_dict())  # references; packed linears replaced below
    compressor = None
    if result.quantized:
        s = report["settings"]
        scheme = quantization_scheme(s["bits"], s["group_size"], s["symmetric"], s["act_order"])
        modules = _quantized_modules(model, result)
        for name, (module, q) in modules.items():
            del state[f"{name}.weight"]
            state |= {f"{name}.{k}": v for k, v in _pack(name, module, q, scheme, lib).items()}
        compressor = _read_back_config(model, [m for m, _ in modules.values()], scheme, lib)
    if renamed := expert_checkpoint_names(model):  # a MoE model: each expert under its checkpoint name
        state = {_checkpoint_key(key, renamed): value for key, value in state.items()}
    model.save_pretrained(out, state_dict=state)
    if renamed:  # save_pretrained converts names again: the experts must have come through as named
        from safetensors import safe_open

        saved = set()
        for path in out.glob("*.safetensors"):
            with safe_open(str(path), "pt") as f:
                saved |= set(f.keys())
        lost = sorted(k for k in state if k.rpartition(".")[0] in set(renamed.values()) and k not in saved)
        if lost:
            raise ColaError(
                f"compressed-tensors: the experts were saved under other names than expected ({lost[0]}); use --format dense"
            )
    sparsity = _sparsity_config(model, report, lib)
    if sparsity is not None and compressor is None and any(fused_experts(layer) for layer in decoder_layers(model)):
        # transformers 5.23 sends a MoE checkpoint's experts through its quantized-experts loader whenever a
        # quantization_config is present, and that loader fails without config groups
        sparsity = None
        report["sparsity_config"] = "left out: transformers 5.23 cannot load a mixture-of-experts checkpoint with it"
    if compressor is not None:
        compressor.update_config(str(out))  # quantization_config exactly as llm-compressor writes it
    if sparsity is not None:
        base = lib.base
        path = out / "config.json"
        config = json.loads(path.read_text())
        qc = config.setdefault(
            base.QUANTIZATION_CONFIG_NAME,
            {
                base.COMPRESSION_VERSION_NAME: lib.version,
                base.QUANTIZATION_METHOD_NAME: base.QUANTIZATION_METHOD,
                base.TRANSFORM_CONFIG_NAME: {},
            },
        )
        qc[base.SPARSITY_CONFIG_NAME] = sparsity.model_dump(exclude={"registry_requires_subclass"})
        path.write_text(json.dumps(config, indent=2, sort_keys=True))
