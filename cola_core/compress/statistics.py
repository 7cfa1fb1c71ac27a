"""Inputs of the linears inside one decoder layer: finding them, reading/writing their weights, and
collecting fp32 statistics of their inputs (padding masked out) in one replay of the layer, shared by
every linear fed the same tensor (q/k/v, gate/up).

Which statistics a method reads is said by its registry entry (methods.py); this module only
computes them: the column norms Σ x_j² always, the Hessian XXᵀ/n over every token when asked
(``full``), else an evenly spread sample of ``error_tokens`` tokens or so, enough to measure the
reconstruction error; and each linear's Σ ‖Wx‖², the error's denominator, from the same replay."""

from __future__ import annotations

import contextlib
import weakref
from typing import TYPE_CHECKING, Any

import torch

from cola_core.compress.capture import LayerInputs
from cola_core.compress.experts import ROUTER, SplitExperts, expert_of, real_tokens, starving

if TYPE_CHECKING:  # config.py imports the method registry, which imports this module
    from cola_core.compress.config import CompressConfig as Settings


def _all_linears(layer: torch.nn.Module) -> dict[str, torch.nn.Module]:
    from transformers.pytorch_utils import Conv1D

    return {n: m for n, m in layer.named_modules() if isinstance(m, (torch.nn.Linear, Conv1D))}


def find_linears(layer: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Linear maps inside a decoder layer that get compressed: ``nn.Linear`` and GPT-2's transposed
    ``Conv1D`` — a mixture-of-experts layer's experts once split (experts.py) — but not routers."""
    return {n: m for n, m in _all_linears(layer).items() if not ROUTER.search(n)}


def find_routers(layer: torch.nn.Module) -> list[str]:
    """The modules that route tokens to experts (``mlp.gate``, ``router``, ``shared_expert_gate``),
    linears or not: kept dense."""
    return [
        n for n, m in layer.named_modules() if ROUTER.search(n) and isinstance(getattr(m, "weight", None), torch.Tensor)
    ]


def weight_of(module: torch.nn.Module) -> torch.Tensor:
    """The (out × in) matrix, whatever the module's storage layout."""
    return module.weight.data if isinstance(module, torch.nn.Linear) else module.weight.data.t()


def set_weight(module: torch.nn.Module, w: torch.Tensor) -> None:
    target = module.weight.data
    target.copy_((w if isinstance(module, torch.nn.Linear) else w.t()).to(target.dtype))


def real_rows(y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, d) → (real tokens, d) in fp32. An expert's rows (fewer than the batch's tokens) were
    picked from the real tokens already (experts.real_tokens): all of them are kept."""
    rows = y.reshape(-1, y.shape[-1])
    if len(rows) != mask.numel() or bool(mask.all()):  # a batch without padding: no copy to gather
        return rows.float()
    return rows[mask.reshape(-1).bool()].float()


class _Recorded(Exception):
    """Raised at the last linear's input: the rest of the layer's replay is not read."""


class Stats:
    """Of one input shared by the linears that read it, over its real tokens: the column norms Σ x_j²
    (fp64), the Hessian Σ xxᵀ when ``full`` (fp32, TF32 off) — else an evenly spread sample of
    ``error_tokens`` to 2 × ``error_tokens`` rows for the error measurement — and, per linear reading it,
    Σ ‖Wx‖² (its output less its bias, taken from the replay: the error's denominator for free)."""

    def __init__(self, d_in: int, full: bool, error_tokens: int, device: torch.device):
        self.full, self.error_tokens = full, error_tokens
        self.h = torch.zeros(d_in, d_in, device=device) if full else None
        self.sq = torch.zeros(d_in, dtype=torch.float64, device=device)  # fp64: same Wanda ranks on any device
        self.sample = torch.zeros(0, d_in, device=device)  # the rows at multiples of ``stride``
        self.stride = 1
        self.out_sq: dict[str, torch.Tensor] = {}  # linear → Σ ‖Wx‖² (fp64)
        self.tokens = 0
        self.normalised = False  # h holds Σ xxᵀ until hessian() divides it by the tokens
        # accumulated in 4 row blocks of its upper triangle, mirrored once at the end: 10 of 16 blocks'
        # products, measured 0.58-0.64x the time of the whole product (issue #33)
        self.block = max(256, -(-d_in // 4))

    def add(self, x: torch.Tensor, mask: torch.Tensor) -> None:
        """Accumulate the rows of ``x`` that ``mask`` marks real (:func:`real_rows`)."""
        if self.normalised:
            raise ValueError("statistics are complete once hessian() was read")
        rows = real_rows(x, mask)
        self.sq += rows.double().square_().sum(0)  # squared in place: one fp64 copy, not two
        if self.h is not None:
            for i in range(0, len(self.h), self.block):  # H's upper block triangle: H is symmetric
                self.h[i : i + self.block, i:].addmm_(rows[:, i : i + self.block].t(), rows[:, i:])
        elif self.error_tokens > 0:
            # every stride-th token of the whole stream; past 2 × error_tokens, every other one is dropped
            self.sample = torch.cat([self.sample, rows[(-self.tokens) % self.stride :: self.stride]])
            while len(self.sample) > 2 * self.error_tokens:
                self.sample, self.stride = self.sample[::2].contiguous(), 2 * self.stride
        self.tokens += len(rows)

    def add_output(self, name: str, y: torch.Tensor, bias: torch.Tensor | None, mask: torch.Tensor) -> None:
        """Σ ‖Wx‖² of linear ``name`` from its output ``y`` on the same rows as :meth:`add`."""
        rows = real_rows(y, mask)
        if bias is not None:
            rows = rows - bias.float()
        flat = rows.reshape(-1)
        total = torch.dot(flat, flat).double()  # a batch's sum in fp32 (BLAS, no temporary), the run's in fp64
        self.out_sq[name] = self.out_sq[name] + total if name in self.out_sq else total

    def hessian(self) -> torch.Tensor:
        """H = XXᵀ/n over every real token (``full`` statistics only), normalised in place on the first
        call (no copy of a d × d matrix per linear; nothing is added after the replay)."""
        if self.h is None:
            raise ValueError("this statistic holds no Hessian: collect it with full=True")
        if not self.normalised:
            with torch.inference_mode():  # made in the replay: an inference tensor
                b = self.block
                for i in range(0, len(self.h), b):
                    self.h[i + b :, i : i + b] = self.h[i : i + b, i + b :].t()
                self.h /= max(self.tokens, 1)
            self.normalised = True
        return self.h

    def relative_error(
        self, name: str, w: torch.Tensor, w_new: torch.Tensor, row_error: torch.Tensor | None = None
    ) -> float | None:
        """‖WX − ŴX‖² / ‖WX‖² of linear ``name`` on the calibration inputs. The numerator is the
        method's own (``row_error``: SparseGPT's and GPTQ's OBS losses, obs.py), else (W − Ŵ)H(W − Ŵ)ᵀ
        through the Hessian, else measured on the sample; the denominator is the replay's Σ ‖Wx‖², or
        for the linear the replay stopped at, WHWᵀ or the sample's."""
        if name in self.out_sq:
            den = float(self.out_sq[name]) / max(self.tokens, 1)
        elif self.h is not None:
            den = float(((w.float() @ self.hessian()) * w.float()).sum())
        elif len(self.sample):
            den = float((self.sample @ w.float().t()).square().sum()) / len(self.sample)
        else:
            return None
        if den <= 0:
            return 0.0
        if row_error is not None:
            num = float(row_error.sum())
        elif self.h is not None:
            dw = (w - w_new).float()
            num = float(((dw @ self.hessian()) * dw).sum())
        elif len(self.sample):
            num = float((self.sample @ (w - w_new).float().t()).square().sum()) / len(self.sample)
        else:
            return None
        return max(num, 0.0) / den


def collect_statistics(
    layer: torch.nn.Module,
    linears: dict[str, torch.nn.Module],
    inputs: LayerInputs,
    *,
    full: bool,
    error_tokens: int,
) -> tuple[dict[str, Stats], dict[str, str]]:
    """One replay of the dense layer; returns stats per group leader and each linear's leader.

    ``full``: accumulate the Hessian over every token, else keep a sample of about ``error_tokens``.
    After the first batch, each batch's replay stops at the input of the last linear it called: what
    follows (that linear's product, the residual) is not read — a dense MLP's widest matmul (measured,
    issue #33: 22% of the replay on the 8 × 1024 Llama). Not in a mixture-of-experts layer, whose last
    linear depends on the routing."""
    stats: dict[str, Stats] = {}
    leader: dict[str, str] = {}
    order: list[str] = []  # the first batch's linears, in the order they were called
    stop: dict[str, str | None] = {"at": None}
    # id → (weak reference, first reader): a live reference that is the very tensor proves the sharing,
    # without keeping inputs alive (a MoE layer's experts each read their own copy of the tokens)
    seen: dict[int, tuple[weakref.ref, str]] = {}
    current: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(_module, args):
            x = args[0]
            if name not in leader:  # first batch: linears fed the very same tensor share statistics
                ref, first = seen.get(id(x), (None, name))
                if ref is None or ref() is not x:  # unseen, or an id reused after its tensor was freed
                    seen[id(x)], first = (weakref.ref(x), name), name
                leader[name] = first
            if leader[name] == name:
                if name not in stats:
                    stats[name] = Stats(x.shape[-1], full, error_tokens, x.device)
                stats[name].add(x, current["mask"])
            if stop["at"] is None:
                order.append(name)
            elif name == stop["at"]:
                raise _Recorded

        return hook

    def output_hook_for(name: str):
        def hook(module, _args, y):
            stats[leader[name]].add_output(name, y, getattr(module, "bias", None), current["mask"])

        return hook

    handles = [m.register_forward_pre_hook(hook_for(n)) for n, m in linears.items()]
    handles += [m.register_forward_hook(output_hook_for(n)) for n, m in linears.items()]
    moe = any(isinstance(m, SplitExperts) for m in layer.modules())
    try:
        for h, kw, mask in zip(inputs.hidden, inputs.kwargs, inputs.masks, strict=True):
            current["mask"] = mask
            seen.clear()
            with torch.inference_mode(), real_tokens(layer, mask), contextlib.suppress(_Recorded):
                layer(h, **kw)
            if stop["at"] is None and order and not moe and order.count(order[-1]) == 1:
                stop["at"] = order[-1]  # its output norms will not be seen again: its error's denominator
                stats[leader[order[-1]]].out_sq.pop(order[-1], None)  # comes from its statistic instead
    finally:
        for handle in handles:
            handle.remove()
    return stats, leader


def layer_statistics(
    layer: torch.nn.Module, linears: dict[str, torch.nn.Module], inputs: LayerInputs, full: bool, config: Settings
) -> tuple[dict[str, Stats], dict[str, str], dict[str, dict[str, Any]]]:
    """Statistics of every linear's input from a replay of the layer (statistics.py), per group leader,
    with each linear's leader. A mixture-of-experts layer's split experts (experts.py) take theirs from
    the tokens routed to them, or from every token (``moe_calibration="all"``); under *routed*, experts
    given fewer than ``moe_floor`` × their input width tokens are replayed again with every token.
    Third: per experts module, what its report shows (routed tokens per expert, who fell back)."""
    split = {n: m for n, m in layer.named_modules() if isinstance(m, SplitExperts)}
    everyone = config.moe_calibration == "all"
    for m in split.values():
        m.routed.zero_()
        m.all_tokens = frozenset(range(m.num_experts)) if everyone else frozenset()
    stats, leader = collect_statistics(layer, linears, inputs, full=full, error_tokens=config.error_tokens)
    routed = {name: m.routed.tolist() for name, m in split.items()}
    low = {} if everyone else starving(split, config.moe_floor)
    if low:
        for name, m in split.items():
            m.all_tokens = frozenset(low.get(name, ()))
        again = {n: lin for n, lin in linears.items() if (ex := expert_of(n, split)) and ex[1] in low.get(ex[0], ())}
        for n in again:  # freed before the replay that replaces them: one statistic per expert at a time
            stats.pop(leader.get(n, n), None)
        more, more_leader = collect_statistics(layer, again, inputs, full=full, error_tokens=config.error_tokens)
        stats.update(more)
        leader.update(more_leader)
    for m in split.values():
        m.all_tokens = frozenset()
    report = {
        name: {
            "experts": m.num_experts,
            "calibration": config.moe_calibration,
            "routed_tokens": routed[name],
            "floor_tokens": int(config.moe_floor * m.floor_width),
            "all_tokens_for": low.get(name, []),
            "statistic_tokens": [stats[leader[f"{name}.{e}.gate_proj"]].tokens for e in range(m.num_experts)],
        }
        for name, m in split.items()
    }
    return stats, leader, report
