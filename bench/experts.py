"""Expert coverage of Stage 3's selections on a random mixture-of-experts model (issue #31).

Expert coverage is the share of experts, over every layer, to which a selection's real tokens are
routed at least the floor's number of times (the widest input of an expert's projections: what a
full-rank statistic needs; compress/experts.py gives the others every token instead). A random
Qwen3-MoE (cola-tiny's tokenizer, top-8 routing) places the built-in pool, packed so that every
sample holds the same number of real tokens (a longer selection would otherwise cover more experts
by length alone); each strategy selects n samples for several seeds, with and without the routing histogram in the activation space
(``--expert-features``). Random weights route by token identity more than by meaning, so this
measures the mechanism, not what a trained model's experts would see.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import replace

STRATEGIES = ("random", "cola", "cola-quota", "cola-experts", "tradeoff")


def _model_dir(root: str, layers: int, experts: int, width: int, intermediate: int) -> str:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from cola_core.models.loading import load_model

    tokenizer = load_model("cola-tiny").tokenizer
    config = AutoConfig.for_model(
        "qwen3_moe",
        vocab_size=len(tokenizer),
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=width // 4,
        num_experts=experts,
        num_experts_per_tok=8,
        moe_intermediate_size=intermediate,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


def run(
    sizes: tuple[int, ...] = (8, 16, 32),
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
    layers: int = 4,
    experts: int = 64,
    width: int = 256,
    intermediate: int = 64,
    pool: int = 600,
    seqlen: int = 128,
) -> list[dict]:
    from cola_core.curation.metrics import coverage, expert_coverage
    from cola_core.curation.pipeline import CurateConfig, build_space, run_selection
    from cola_core.models.loading import load_model
    from cola_core.settings import build

    rows = []
    with tempfile.TemporaryDirectory() as root:
        loaded = load_model(_model_dir(root, layers, experts, width, intermediate), device="cpu")
        for features in (False, True):
            base = build(
                CurateConfig,
                corpora=("prose", "code", "math", "facts"),
                pool_size=pool,
                seqlen=seqlen,
                mode="pack",  # every sample seqlen real tokens: coverage differs by routing, not by length
                expert_features=features,
                capabilities=(),
            )
            space = build_space(loaded, base, with_probes=False)
            embedded = space.embedded
            for strategy in STRATEGIES:
                for n in sizes:
                    chosen = [
                        run_selection(embedded, replace(base, n=n, strategy=strategy, seed=seed)).indices
                        for seed in seeds
                    ]
                    covered = [expert_coverage(embedded.experts, c, embedded.expert_floor) for c in chosen]
                    centre = embedded.space.mean(0)
                    represent = [coverage(embedded.space, embedded.space[c], centre) for c in chosen]
                    row = {
                        "strategy": strategy,
                        "expert_features": features,
                        "n": n,
                        "mean": statistics.mean(covered),
                        "min": min(covered),
                        "max": max(covered),
                        "representativeness": statistics.mean(represent),
                        "seeds": len(seeds),
                        "floor": embedded.expert_floor,
                        "pool": len(embedded.records),
                        "seqlen": seqlen,
                        "model": f"random Qwen3-MoE {width} wide, {layers} layers × {experts} experts × {intermediate} (top 8)",
                    }
                    rows.append(row)
                    print(row, flush=True)
    return rows


def to_markdown(rows: list[dict]) -> str:
    if not rows:
        return ""
    head, sizes = rows[0], sorted({r["n"] for r in rows})
    lines = [
        f"{head['model']}; built-in pool of {head['pool']} packed samples of {head['seqlen']} tokens (prose, code, math, facts), "
        f"floor {head['floor']} tokens; mean [min, max] over {head['seeds']} seeds.",
        "",
        "| strategy | routing in the space | "
        + " | ".join(f"n = {n}" for n in sizes)
        + f" | representativeness at n = {sizes[-1]} |",
        "|---|---|" + "---|" * (len(sizes) + 1),
    ]
    for features in (False, True):
        for strategy in STRATEGIES:
            cells = {r["n"]: r for r in rows if r["strategy"] == strategy and r["expert_features"] == features}
            text = " | ".join(
                f"{cells[n]['mean']:.1%} [{cells[n]['min']:.1%}, {cells[n]['max']:.1%}]" for n in sizes if n in cells
            )
            last = cells[sizes[-1]]["representativeness"]
            lines.append(f"| {strategy} | {'yes' if features else 'no'} | {text} | {last:.3f} |")
    return "\n".join(lines)
