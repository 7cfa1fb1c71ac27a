"""The human-readable output of each command (``--json`` prints the payload itself)."""

from __future__ import annotations

from typing import Any

from cola_core.curation.pipeline import describe_stages


def models_text(p: dict[str, Any]) -> str:
    rows = [f"{m['name']:<40} {m['source']:<9} {m['params'] or '?':>12}  {m['path']}" for m in p["models"]]
    return "\n".join([f"{'name':<40} {'source':<9} {'params':>12}  path", *rows])


def corpora_text(p: dict[str, Any]) -> str:
    rows = [f"{c['name']:<8} {c['domain']:<8} {'/'.join(c['splits']):<20} {c['description']}" for c in p["corpora"]]
    extra = "Also: local files (.txt .jsonl .json .csv .parquet) and hf:NAME[:CONFIG[:SPLIT]]."
    return "\n".join([*rows, extra])


def export_tasks_text(p: dict[str, Any]) -> str:
    names = ",".join(t["task"] for t in p["tasks"].values())
    return "\n".join(
        [
            *(f"{c:<6} {t['task']:<11} {t['yaml']}" for c, t in p["tasks"].items()),
            f"run: lm_eval --include_path {p['dir']} --tasks {names} …",
        ]
    )


def sample_text(p: dict[str, Any]) -> str:
    return "\n\n".join(f"[{r['id']}] ({r['corpus']}/{r['domain']})\n{r['text']}" for r in p["records"])


def curate_text(p: dict[str, Any]) -> str:
    pool = p.get("pool_mix", {})
    mix = ", ".join(f"{k} {v} (pool {pool[k]})" if k in pool else f"{k} {v}" for k, v in p["mix"].items())
    short = p.get("selection", {}).get("shortfall")
    if short:
        mix += "; quota short by " + ", ".join(f"{k} {v}" for k, v in short.items()) + " (given to the other corpora)"
    stages = "".join(f"{stage}: {line}\n" for stage, line in describe_stages(p["stage1"], p["stage2"]).items())
    return (
        stages + f"Stage 3 · selected {p['n']} samples ({p['strategy']}) in {p['seconds']:.1f}s → {p['out']}\n"
        f"representativeness {p['representativeness']:.3f}  diversity {p['diversity']:.3f}  "
        f"cluster coverage {p['cluster_coverage']:.0%}  tokens {p['tokens']:,}"
        + (f"  expert coverage {p['expert_coverage']:.0%}" if "expert_coverage" in p else "")
        + f"\nmix: {mix}"
    )


def scores_text(p: dict[str, Any]) -> str:
    import pandas as pd

    table = pd.DataFrame(p["table"]).pivot(index="corpus", columns="capability", values="score")
    mix = ", ".join(f"{k} {v:.0%}" for k, v in p["mix"].items())
    return (
        f"correspondence (α={p['alpha']}):\n{table.round(3).to_string()}\n\nrecommended mix ({p['deployment']}): {mix}"
    )


def selfgen_text(p: dict[str, Any]) -> str:
    if "questions" in p:
        how = "through the chat template" if p["chat_template"] else "as Question: …"
        graded = f"; {p['right']} of {p['questions']} answers right, only those kept" if p["right"] is not None else ""
        return (
            f"asked {p['questions']} questions {how}{graded}; wrote {p['n']} reasoning traces "
            f"(mean perplexity {p['mean_perplexity']:.1f}) → {p['out']}; use it with --corpora {p['out']}"
        )
    return f"wrote {p['n']} self-generated samples (mean perplexity {p['mean_perplexity']:.1f}) → {p['out']}; use it with --corpora {p['out']}"


def compress_text(p: dict[str, Any]) -> str:
    from cola_core.compress.methods import method_names

    # a quantizer's zeros (values rounded to 0) are not pruning: sparsity is said for pruning methods only
    pruned = p["method"].split("+")[0] in method_names("pruning")
    parts = [f"sparsity {p['achieved_sparsity']:.1%}"] if pruned else []
    parts += [f"{p['bits']}-bit"] if p["bits"] else []
    what = ", ".join(parts)
    rows = [
        f"  layer {x['layer']:>3}: {x['seconds']:.2f}s  mean rel. error {sum(x['relative_error'].values()) / len(x['relative_error']):.4f}"
        for x in p["layers"]
    ]
    head = f"{p['method']} ({what}) on {p['device']} in {p['seconds']:.1f}s → {p['out']}"
    size = f"{p['format']} weights: {p['size_bytes'] / 1e6:,.1f} MB ({p['size_bytes']:,} bytes)"
    return "\n".join([head, size, *experts_lines(p.get("experts")), *rows])  # serving: said before the work


def experts_lines(e: dict[str, Any] | None) -> list[str]:
    """What a mixture-of-experts run says about its experts (nothing for a dense model)."""
    if not e:
        return []
    t = e["routed_tokens"]
    lines = [
        f"experts: {e['experts']} compressed, statistics from {'every token' if e['calibration'] == 'all' else 'the tokens routed to each'}"
        f" (routed real tokens per expert: min {t['min']}, median {t['median']}, max {t['max']})"
    ]
    low = e["all_tokens_for"]
    if low:
        named = "; ".join(f"layer {x['layer']} {x['module']} {', '.join(map(str, x['experts']))}" for x in low[:4])
        more = f" and {len(low) - 4} more layers" if len(low) > 4 else ""
        count = sum(len(x["experts"]) for x in low)
        lines.append(
            f"  {count} experts got fewer than {'/'.join(map(str, e['floor_tokens']))} routed tokens (the floor) and took"
            f" their statistics from every token: {named}{more}"
        )
    if e["routers_kept_dense"]:
        lines.append(f"  routers kept dense: {', '.join(e['routers_kept_dense'])}")
    return lines


def evaluate_text(p: dict[str, Any]) -> str:
    rows = [
        f"{k:<16} {v['metric']:<10} {v['score']:>9.4f}  [{v['ci_low']:.4f}, {v['ci_high']:.4f}]  n={v['n']}"
        for k, v in p["scores"].items()
    ]
    rows += [f"{k:<16} skipped: {why}" for k, why in p.get("skipped", {}).items()]
    return "\n".join([f"{p['model']} ({p['seconds']:.1f}s)", *rows])


def runs_text(p: dict[str, Any]) -> str:
    rows = [
        f"{r['id']:>5} {r['status']:<9} {r['model']:<28} {r['calibration'] or '-':<28} {r['error'] or ''}"
        for r in p["runs"]
    ]
    return "\n".join([f"{len(p['runs'])} runs in {p['store']}", *rows])


def experiment_text(p: dict[str, Any]) -> str:
    if "builtin" in p:
        return "built-in experiments: " + ", ".join(p["builtin"])
    return p["markdown"]
