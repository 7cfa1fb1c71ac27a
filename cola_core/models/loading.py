"""Loading causal LMs: built-in models, local directories and Hugging Face hub ids, offline first.

``load_model("cola-tiny")`` and ``load_model("meta-llama/Llama-3.2-1B")`` take the same path through
``AutoModelForCausalLM``/``AutoTokenizer``. ``trust_remote_code`` is off unless the caller turns it
on. A model that cannot be found raises one :class:`ColaError` saying what was tried and what to do.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import socket
import struct
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cola_core.errors import ColaError
from cola_core.paths import ZOO_DIR, cache_root
from cola_core.storage.fingerprints import fingerprint_directory, fingerprint_module
from cola_core.storage.processes import pid_alive

DEFAULT_MODEL = "cola-tiny"  # the built-in model every entry point starts from
# cola-tiny's variants: the same recipe (cola_core/zoo/train.py) from other initialisation seeds, so an
# experiment can treat the model as a random effect (the paper-claims-models config)
VARIANTS = ("cola-tiny-s1", "cola-tiny-s2")
BUILTIN_MODELS = {name: ZOO_DIR / name for name in (DEFAULT_MODEL, *VARIANTS)}


@dataclass(frozen=True)
class ModelInfo:
    """A model the registry knows about; ``params`` is read from safetensors headers."""

    name: str
    source: str  # "builtin" | "hf-cache" | "local"
    path: str
    params: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "path": self.path, "params": self.params}


@dataclass
class LoadedModel:
    name: str
    path: str
    model: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    fingerprint: str
    trust_remote_code: bool = False
    device_map: str | None = None


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` → cuda, then mps, then cpu; anything else is taken as given and checked."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ColaError(f"unknown device '{device}': use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ColaError(f"device '{device}' was asked for but no CUDA GPU is available; use --device cpu")
    return dev


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` → bf16 on GPU, fp32 on CPU (CPU bf16 matmuls are slow and lossy for statistics)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in table:
        raise ColaError(f"unknown dtype '{dtype}': use auto, float32, bfloat16 or float16")
    return table[dtype]


def ensure_pad_token(tokenizer: Any) -> None:
    """Give a tokenizer without a pad token one; padding is always masked, so reusing EOS is safe."""
    if tokenizer.pad_token_id is not None:
        return
    if tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    elif tokenizer.unk_token is not None:
        tokenizer.pad_token = tokenizer.unk_token
    else:
        raise ColaError("the tokenizer has no pad, eos or unk token to pad with; add one to its tokenizer_config.json")


def _hub_snapshot(repo_id: str) -> Path | None:
    """The local snapshot of a hub model if the HF cache has it (no network)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached, or not a valid repo id
        return None


def resolve_model(name: str) -> tuple[str, str]:
    """(path or hub id, source) for a model name: built-in, local directory, HF cache, or hub."""
    if name in BUILTIN_MODELS:
        return str(BUILTIN_MODELS[name]), "builtin"
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ColaError(f"'{name}' is a path but holds no config.json, so it is not a Hugging Face model directory")
        return str(path), "local"
    snapshot = _hub_snapshot(name)
    if snapshot is not None:
        return str(snapshot), "hf-cache"
    return name, "hub"


def _not_found(name: str, exc: Exception) -> ColaError:
    builtins = ", ".join(BUILTIN_MODELS)
    hf_home = os.environ.get("HF_HOME", "~/.cache/huggingface")
    return ColaError(
        f"could not load model '{name}': it is not a built-in model ({builtins}), not a local directory, "
        f"not in the Hugging Face cache ({hf_home}) and the hub did not answer ({type(exc).__name__}); "
        f"pass a local model directory, point HF_HOME at a cache that has it, or run "
        f"`hf download {name}` where the hub is reachable"
    )


def _offload_folder(where: str) -> Path:
    """Where accelerate puts the weights that fit neither GPU nor CPU memory: one folder per process
    (a driver and its Ray workers on one node would otherwise rewrite each other's files), removed
    when the process exits; folders left by killed processes on this host are removed here."""
    host = socket.gethostname()
    parent = cache_root() / "offload" / hashlib.sha256(where.encode()).hexdigest()[:16]
    for stale in parent.glob(f"{host}-pid-*"):
        pid = stale.name.rsplit("-", 1)[1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    folder = parent / f"{host}-pid-{os.getpid()}"
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _dequantize_compressed_tensors(where: str) -> dict:
    """A compressed-tensors checkpoint (llm-compressor's, or ``compress --format compressed-tensors``)
    is decompressed at load (``dequantize=True``): transformers 5.23 with compressed-tensors 0.19.0
    cannot load packed asymmetric zero points into its compressed layout (they mismatch in shape)."""
    try:
        config = json.loads((Path(where) / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    quantization = config.get("quantization_config") or {}
    if quantization.get("quant_method") != "compressed-tensors" or not quantization.get("config_groups"):
        return {}  # not compressed-tensors, or sparsity metadata over dense weights: nothing to decompress
    from transformers import CompressedTensorsConfig

    return {"quantization_config": CompressedTensorsConfig(dequantize=True)}


def load_model(
    name: str, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False, device_map: str | None = None
) -> LoadedModel:
    """Load a causal LM and its tokenizer in eval mode on the chosen device and dtype.

    ``device_map="auto"`` (accelerate) spreads a model too large for one GPU over every visible GPU,
    then CPU memory, then disk; ``device`` is then only used to pick the dtype."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where, source = resolve_model(name)
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    placement = {}
    if device_map is not None:
        if device_map != "auto":
            raise ColaError(f"unknown device map '{device_map}': use auto")
        try:
            import accelerate  # noqa: F401
        except ImportError:
            raise ColaError("device_map='auto' needs accelerate: pip install accelerate") from None
        placement = {"device_map": "auto", "offload_folder": str(_offload_folder(where))}
    quantized = _dequantize_compressed_tensors(where)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code)
        with warnings.catch_warnings():  # passing dequantize=True over the checkpoint's own config is the point
            warnings.filterwarnings("ignore", message="You passed `quantization_config`", category=UserWarning)
            model = AutoModelForCausalLM.from_pretrained(
                where, dtype=dt, trust_remote_code=trust_remote_code, **placement, **quantized
            )
    except (OSError, ValueError) as exc:
        if source == "hub":
            raise _not_found(name, exc) from None
        raise ColaError(f"could not load model '{name}' from {where}: {str(exc).splitlines()[0]}") from None
    ensure_pad_token(tokenizer)
    if not placement:
        model.to(dev)
    model.eval()
    if source == "hub":  # downloaded just now: fingerprint the files it landed in
        where = str(_hub_snapshot(name) or where)
    fingerprint = fingerprint_directory(where) if Path(where).is_dir() else fingerprint_module(model)
    return LoadedModel(name, where, model, tokenizer, dev, dt, fingerprint, trust_remote_code, device_map)


_CACHE: dict[tuple, LoadedModel] = {}
_CACHE_LOCK = threading.Lock()


def load_model_cached(
    name: str, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False, device_map: str | None = None
) -> LoadedModel:
    """One loaded copy per process and settings: the dashboard's sessions share it (read-only)."""
    key = (name, device, dtype, trust_remote_code, device_map)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = load_model(name, device, dtype, trust_remote_code, device_map)
        return _CACHE[key]


def count_params(path: str | Path) -> int | None:
    """Parameter count from the safetensors headers, without loading any weights."""
    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with file.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        for key, entry in header.items():
            if key != "__metadata__":
                count = 1
                for dim in entry["shape"]:
                    count *= dim
                total += count
    return total


def list_models() -> list[ModelInfo]:
    """Built-in models, then causal-LM-looking models found in the local Hugging Face cache."""
    found = [ModelInfo(n, "builtin", str(p), count_params(p)) for n, p in BUILTIN_MODELS.items()]
    try:
        from huggingface_hub import scan_cache_dir

        repos = sorted(scan_cache_dir().repos, key=lambda r: r.repo_id)
    except Exception:  # no cache directory yet
        repos = []
    for repo in repos:
        if repo.repo_type != "model":
            continue
        for rev in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True)[:1]:
            if (Path(rev.snapshot_path) / "config.json").is_file():
                found.append(
                    ModelInfo(repo.repo_id, "hf-cache", str(rev.snapshot_path), count_params(rev.snapshot_path))
                )
    return found


def context_length(model) -> int:
    """Longest sequence the model takes (from its config; 2048 when the config does not say)."""
    cfg = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048
