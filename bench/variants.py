"""Two settings of one compression method, side by side on held-out quality (B ÷ A).

    python -m bench.variants --method awq --b=--awq-duo [--a=...] [--models tiny,wide] [--docs]

(``--b=--awq-duo`` with the ``=``: a value that starts with a dash.)

Both sides are whole ``cola_core compress`` processes on ``bench.inputs``' models and calibration (64 ×
128 tokens of built-in prose), differing only by the flags given. Each output is then scored in one
process as ``bench.peer`` scores its pairs: perplexity of 200 held-out prose texts, the KL divergence
of its next-token distributions from the dense model's, and the first decoder layer's output error;
on cola-tiny (trained, so its capabilities mean something) also ``evaluate``'s capability scores.
Every B ÷ A ratio carries a paired bootstrap interval over the held-out items, Bonferroni-corrected
for the number of ratios the run reads (``level`` in the table): a setting is better or worse only
where its interval excludes 1. This is how a default is chosen (docs/compression.md).
"""

from __future__ import annotations

import json
import shlex

from bench import description, replaced
from bench.inputs import MODELS, bench_inputs
from bench.peer import _timed, chosen, compress_command
from bench.peer_quality import Dense, compare

# evaluate's built-in suite on cola-tiny only, less lm: its held-out prose perplexity is the first row
CAPABILITIES = ("code", "math", "facts")
AWQ_DUO = ("awq", [], ["--awq-duo"])  # the comparison behind AWQ's default (bench.run's section)


def _scores(path: str, limit: int) -> dict:
    """``evaluate``'s capability scores of the model at ``path`` (fp32, CPU, ``limit`` items each)."""
    from cola_core.evaluation.suite import evaluate
    from cola_core.models.loading import load_model

    loaded = load_model(path, device="cpu", dtype="float32")
    return evaluate(loaded.model, loaded.tokenizer, CAPABILITIES, limit=limit)


def run(
    method: str,
    a: list[str],
    b: list[str],
    models: tuple[str, ...],
    n: int = 64,
    seqlen: int = 128,
    heldout: int = 200,
    limit: int = 200,
) -> list[dict]:
    """One row per model and measure: A's and B's values and B ÷ A with its corrected interval
    (``n`` calibration texts, ``heldout`` prose texts, ``limit`` items per capability)."""
    from cola_core.evaluation.retention import retention

    comparisons = 2 * len(models) + (len(CAPABILITIES) if "tiny" in models else 0)
    level = 1 - 0.05 / comparisons
    rows = []
    with bench_inputs(n, heldout, models) as (root, calib, held, built):
        for label, model in built.items():
            dense = Dense(model, held, seqlen)
            out, seconds = {}, {}
            for side, flags in (("A", a), ("B", b)):
                out[side] = str(root / f"{label.split()[0]}-{side}")
                cli = compress_command(model, calib, seqlen, ["--method", method, *flags], out[side])
                seconds[side], _ = _timed(cli)
            q = compare(out["B"], [out["A"]], dense, level)  # B ÷ A
            common = {"method": method, "a": shlex.join(a), "b": shlex.join(b), "model": label, "level": level}
            common["seconds"] = [seconds["A"], seconds["B"]]
            common["error"] = q["error"][::-1]
            ppl_b, ppl_a = q["ppl"]
            rows.append({**common, "measure": "held-out prose ppl", "values": [ppl_a.score, ppl_b.score]})
            rows[-1]["ratio"] = q["ppl_ratio"]
            rows.append({**common, "measure": "KL to dense", "values": q["kl"][::-1], "ratio": q["kl_ratio"]})
            if label == "cola-tiny":
                scores = {side: _scores(path, limit) for side, path in out.items()}
                for cap in CAPABILITIES:
                    a_score, b_score = scores["A"][cap], scores["B"][cap]
                    # retention is compressed ÷ dense, dense ÷ compressed for perplexity: B ÷ A either way
                    first, second = (b_score, a_score) if a_score.metric == "perplexity" else (a_score, b_score)
                    ratio = retention(first, second, seed=0, rounds=2000, level=level)
                    rows.append(
                        {**common, "measure": f"{cap} ({a_score.metric})", "values": [a_score.score, b_score.score]}
                    )
                    rows[-1]["ratio"] = ratio
            print(json.dumps(rows[-1]), flush=True)
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| method | A | B | model | measure | A | B | B ÷ A [interval] | level | "
        "compress process A / B | first-layer error A / B |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        value, lo, hi = r["ratio"]
        lines.append(
            f"| {r['method']} | `{r['a'] or 'defaults'}` | `{r['b'] or 'defaults'}` | {r['model']} | {r['measure']} | "
            f"{r['values'][0]:.4g} | {r['values'][1]:.4g} | "
            f"{value:.3f}× [{lo:.3f}, {hi:.3f}] | {100 * r['level']:.1f}% | "
            f"{r['seconds'][0]:.1f} s / {r['seconds'][1]:.1f} s | {r['error'][0]:.4f} / {r['error'][1]:.4f} |"
        )
    return "\n".join(lines)


def merged(old: list[dict], rows: list[dict]) -> list[dict]:
    """The stored rows with those of the comparisons (method, A, B, model) just re-run replaced."""
    return replaced(old, rows, lambda r: (r["method"], r["a"], r["b"], r["model"]))


def flags_problem(method: str, flags: list[str]) -> str | None:
    """Why ``compress --method METHOD FLAGS`` would be refused (the CLI's own parsing and checks), or
    None: asked before any model is built."""
    from cola_core.cli import flags as cli_flags
    from cola_core.cli.main import build_parser
    from cola_core.compress import CompressConfig
    from cola_core.errors import ColaError

    try:
        args = build_parser().parse_args(["compress", "--method", method, "--calib", "-", "--out", "-", *flags])
        cli_flags.from_args(CompressConfig, args).validate()
    except ColaError as err:
        return str(err)
    return None


def main() -> None:
    import argparse

    from bench import run as bench_run

    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--method", required=True, help="the compress method both sides run")
    parser.add_argument("--a", default="", help="compress flags of side A, quoted (default: none)")
    parser.add_argument("--b", default="", help="compress flags of side B, quoted (--b=--flag for one flag)")
    parser.add_argument("--models", default="tiny,wide", help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument("--docs", action="store_true", help="also copy the tables into docs/performance.md")
    args = parser.parse_args()
    models = chosen(parser, args.models, MODELS, "--models")
    a, b = shlex.split(args.a), shlex.split(args.b)
    if a == b:
        parser.error("--a and --b are the same flags: nothing to compare")
    for side, flags in (("--a", a), ("--b", b)):
        if problem := flags_problem(args.method, flags):
            parser.error(f"{side} '{shlex.join(flags)}' with --method {args.method}: {problem}")
    rows = run(args.method, a, b, models)
    bench_run.save_section("variants", lambda stored: merged(stored, rows), args.docs)
    print(to_markdown(rows))


if __name__ == "__main__":
    main()
