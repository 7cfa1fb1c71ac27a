"""Compression engine: pruning and quantization of any Hugging Face causal LM, driven by an explicit
calibration set. The methods (magnitude, Wanda, SparseGPT, RTN, GPTQ, …) are the entries of
``methods.REGISTRY``; a whole run (calibration set → compressed model and report) is
:func:`~cola_core.compress.run.compress_with_calibration`."""

from cola_core.compress.config import METHODS, QUANTIZATION, CompressConfig
from cola_core.compress.engine import Cancelled, CompressionResult, compress_model
from cola_core.compress.formats import DEFAULT_FORMAT, FORMATS
from cola_core.compress.methods import REGISTRY, CompressionMethod, compression_method
from cola_core.compress.run import CompressionRun, compress_with_calibration
from cola_core.compress.save import save_compressed

__all__ = [
    "DEFAULT_FORMAT",
    "FORMATS",
    "METHODS",
    "QUANTIZATION",
    "REGISTRY",
    "Cancelled",
    "CompressConfig",
    "CompressionMethod",
    "CompressionResult",
    "CompressionRun",
    "compress_model",
    "compress_with_calibration",
    "compression_method",
    "save_compressed",
]
