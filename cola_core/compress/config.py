"""Settings of a compression run, validated up front with one clear message each. What a method
accepts comes from its registry entry (methods.py): ``kind`` decides which settings apply (sparsity,
pattern and OWL to pruning; bits, groups and act_order to quantization), ``patterns`` and ``bits``
which values."""

from __future__ import annotations

from dataclasses import dataclass, replace

from cola_core.compress.experts import MOE_CALIBRATION
from cola_core.compress.methods import compression_method, method_names
from cola_core.errors import ColaError
from cola_core.settings import setting

# The registry's methods, for menus (CLI, dashboard); validation asks the registry itself.
PRUNING = method_names("pruning")
QUANTIZATION = method_names("quantization")
METHODS = method_names()


@dataclass(frozen=True)
class CompressConfig:
    """Every compression setting, its one default and its help; the CLI's flags, the dashboard's jobs
    and the experiment configs' ``compression`` entries are built from these fields
    (:func:`cola_core.settings.build`)."""

    method: str = setting(
        "wanda", "the compression method (one entry each in compress/methods.py)", choices=METHODS, required=True
    )
    sparsity: float = setting(0.5, "unstructured target in [0, 1)")
    pattern: str | None = setting(None, "N:M semi-structured, e.g. 2:4 (keeps N of every M)")
    bits: int = setting(4, "2..8 (quantization)")
    group_size: int = setting(128, "input columns per quantization group; -1 = per row")
    symmetric: bool = setting(
        False,
        "symmetric quantization grid (no zero point); --asym: a zero point per group",
        flag="--sym",
        also=("--symmetric",),
        off_flag="--asym",
    )
    act_order: bool = setting(False, "GPTQ: columns by decreasing Hessian diagonal (static groups)")
    blocksize: int = setting(128, "columns per block of the OBS sweep (obs.py)", cli=False)
    damp: float = setting(0.01, "fraction of mean(diag H) added to the diagonal")
    # 1,024 rather than the tool-wide 4,096: the replays' temporaries stay small enough for the allocator
    # to reuse (measured, issue #33: GPTQ on the 8 × 1024 Llama, 44.8 s against 54.4 s at 4,096)
    batch_tokens: int = setting(1024, "padded calibration tokens per forward pass of the replays")
    device: str = setting("auto", "auto, cpu, cuda, cuda:N or mps", cli=False)  # the model's --device
    # tokens used to measure reconstruction error for methods without a Hessian
    error_tokens: int = setting(
        256, "evenly spread tokens (up to twice as many) of the error measurement without a Hessian", cli=False
    )
    owl: bool = setting(False, "per-layer sparsity by outlier ratio (OWL, Yin et al. 2024); mean = --sparsity")
    owl_lambda: float = setting(0.08, "OWL: layer sparsities span ≤ 2λ, mean --sparsity")
    owl_m: float = setting(5.0, "OWL: outlier threshold, M × mean score")
    awq_grid: int = setting(20, "AWQ: scaling exponents α searched per group")  # α ∈ {0, 1/grid, …}
    # s = mean|x|^α / mean|ŵ|^(1−α), ŵ each weight over its quantization group's max (AutoAWQ's and
    # llm-compressor's default "duo scaling"); the first of the grid stays plain RTN (s = 1)
    awq_duo: bool = setting(False, "AWQ: scales from activations and weights (duo scaling)")
    # AWQ also searches each (row, group)'s clipping range (the reference's auto_clip)
    awq_clip: bool = setting(True, "AWQ: skip the clipping-range search (on by default)")
    awq_quantizer: str = setting("rtn", "AWQ: what rounds the scaled weights", choices=("rtn", "gptq"))
    awq_tokens: int = setting(4096, "AWQ: calibration tokens the search reads")  # per layer, whole sequences
    quantize: str | None = setting(
        None,
        "after a pruning method, quantize each layer too (rtn, gptq, awq), keeping the pruned weights at zero",
    )
    moe_calibration: str = setting(
        "routed",
        "mixture-of-experts: each expert's statistics from the tokens routed to it (routed) or from every token (all)",
        choices=MOE_CALIBRATION,
    )
    moe_floor: float = setting(
        1.0, "routed: an expert given fewer than this × its input width tokens takes statistics from every token"
    )
    # set on the quantization stage of ``quantize``: pruned weights stay exactly zero
    keep_zeros: bool = setting(False, "pruned weights stay exactly zero", cli=False)

    @property
    def nm(self) -> tuple[int, int] | None:
        if not self.pattern:
            return None
        try:
            n, m = (int(x) for x in self.pattern.split(":"))
        except ValueError:
            raise ColaError(f"pattern must look like N:M (e.g. 2:4), got '{self.pattern}'") from None
        return n, m

    @property
    def short_name(self) -> str:
        """The setting as people write it: "Wanda 50%", "Wanda 2:4", "GPTQ 3-bit g32", "AWQ 4-bit
        per-row", "SparseGPT 50% + GPTQ 4-bit g128"; OWL and a symmetric grid are named when on."""
        title = compression_method(self.method).title or self.method
        if self.is_pruning:
            name = f"{title} {self.pattern or f'{self.sparsity:.0%}'}" + (" OWL" if self.owl else "")
            return f"{name} + {self.quantizer().short_name}" if self.quantize else name
        groups = "per-row" if self.group_size == -1 else f"g{self.group_size}"
        return f"{title} {self.bits}-bit {groups}" + (" sym" if self.symmetric else "")

    @property
    def is_pruning(self) -> bool:
        return self.method in method_names("pruning")

    @property
    def quantizes(self) -> bool:
        """A quantization method, or a pruning method followed by ``quantize``."""
        return not self.is_pruning or self.quantize is not None

    def quantizer(self) -> CompressConfig:
        """The settings of the stage that quantizes after the pruning method (``quantize``), as
        llm-compressor recipes chain a pruning modifier and a quantization modifier: the same bits,
        groups and grid, with the pruned weights kept at zero."""
        return replace(self, method=self.quantize, quantize=None, pattern=None, owl=False, keep_zeros=True)

    def validate(self) -> None:
        method = compression_method(self.method)  # unknown: a ColaError listing the registry
        if self.quantize is not None:
            if method.kind != "pruning":
                raise ColaError(
                    f"--quantize follows a pruning method (e.g. --method sparsegpt --pattern 2:4 --quantize gptq); "
                    f"{self.method} already quantizes"
                )
            if self.quantize not in method_names("quantization"):
                raise ColaError(
                    f"--quantize takes a quantizer: {', '.join(method_names('quantization'))}; got '{self.quantize}'"
                )
        if method.kind == "pruning":
            if self.nm is not None:
                if "N:M" not in method.patterns:
                    raise ColaError(f"{self.method} does not prune to an N:M pattern; leave the pattern unset")
                n, m = self.nm
                if not 0 < n < m:
                    raise ColaError(f"pattern {self.pattern}: N must be at least 1 and smaller than M")
            elif "unstructured" not in method.patterns:
                raise ColaError(f"{self.method} prunes only to an N:M pattern; set one, e.g. 2:4")
            elif not 0.0 <= self.sparsity < 1.0:
                raise ColaError(f"sparsity must lie in [0, 1), got {self.sparsity}")
            if self.owl:
                if self.nm is not None:
                    raise ColaError("OWL sets a sparsity per layer; it does not apply to an N:M pattern")
                reach = 2 * self.owl_lambda  # the layers span 2λ around a mean at the target: one may sit 2λ away
                if self.owl_lambda < 0 or self.sparsity - reach < 0 or self.sparsity + reach >= 1:
                    raise ColaError(
                        f"OWL λ={self.owl_lambda} must be ≥ 0 and keep sparsity ± 2λ inside [0, 1) (sparsity {self.sparsity}):"
                        " lower --owl-lambda or --sparsity"
                    )
                if self.owl_m <= 0:
                    raise ColaError(f"OWL M must be positive, got {self.owl_m}")
        if method.kind == "quantization" or self.quantize is not None:
            quantizer = compression_method(self.quantize or self.method)
            if self.bits not in quantizer.bits:
                raise ColaError(f"bits must lie in {quantizer.bits.start}..{quantizer.bits.stop - 1}, got {self.bits}")
            if self.owl and self.quantize is None:
                raise ColaError("OWL is a pruning schedule; it does not apply to quantization")
            if self.pattern and self.quantize is None:
                raise ColaError(f"{self.method} quantizes; an N:M pattern applies to pruning only, leave it unset")
            if self.group_size not in (0, -1) and self.group_size < 1:
                raise ColaError(f"group size must be positive (or -1 for per-row), got {self.group_size}")
        if self.blocksize < 1 or self.batch_tokens < 1 or self.damp < 0:
            raise ColaError("blocksize and --batch-tokens must be positive and damping non-negative")
        if self.awq_grid < 1:
            raise ColaError(f"AWQ grid must be a positive number of α steps, got {self.awq_grid}")
        if self.awq_quantizer not in ("rtn", "gptq"):
            raise ColaError(f"AWQ quantizer must be rtn or gptq, got '{self.awq_quantizer}'")
        if self.moe_calibration not in MOE_CALIBRATION:
            raise ColaError(f"--moe-calibration is routed or all, got '{self.moe_calibration}'")
        if self.moe_floor < 0:
            raise ColaError(f"--moe-floor must be ≥ 0 (a multiple of each expert's input width), got {self.moe_floor}")
        if self.awq_tokens < 1:
            raise ColaError(f"AWQ tokens must be positive, got {self.awq_tokens}")

    def check_width(self, name: str, d_in: int) -> None:
        """Per-layer shape checks: M and the group size must divide the input width."""
        if self.is_pruning and self.nm is not None and d_in % self.nm[1]:
            raise ColaError(f"pattern {self.pattern}: M={self.nm[1]} does not divide the width {d_in} of {name}")
        if self.quantizes and self.group_size > 0 and d_in % self.group_size:
            raise ColaError(
                f"group size {self.group_size} does not divide the width {d_in} of {name}; pick a divisor or -1"
            )
