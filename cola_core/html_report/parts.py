"""The pieces the HTML report is assembled from (html_report.py, runs_report.py): the page and its
style, sections, tables, number and verdict formatting, and the sections both kinds of report share —
the COLA trail, the map and per-layer errors. Everything is escaped; nothing refers outside the file."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from html import escape

import pandas as pd

from cola_core.app.compare import layer_errors
from cola_core.curation.pipeline import describe_stages
from cola_core.curation.selection import REGISTRY as STRATEGY_REGISTRY
from cola_core.experiments.config import ExperimentConfig, compression_label, compression_name
from cola_core.html_report.svg_charts import PALETTE, IntervalRow, interval_chart, line_chart, scatter_map
from cola_core.html_report.trail import SetTrail

__all__ = ["IntervalRow", "interval_chart"]

VERDICT_COLOURS = {"supported": "#2c9c55", "contradicted": "#c23b3b", "inconclusive": "#6f7782"}
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d2125;
  margin: 0; background: #f4f5f7; line-height: 1.45; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; }
h1 { font-size: 1.7em; margin: 0.2em 0; } h2 { border-bottom: 2px solid #e3e6ea; padding-bottom: 4px; margin-top: 2em; }
h3 { margin-bottom: 0.3em; } .meta { color: #5b6470; font-size: 0.9em; }
nav a { margin-right: 14px; font-size: 0.92em; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 0.9em; }
th, td { border: 1px solid #d9dde2; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f2f5; } tr:nth-child(even) td { background: #fafbfc; }
.verdict { font-weight: 700; padding: 1px 8px; border-radius: 10px; color: #fff; white-space: nowrap; }
.warn { color: #8a5300; background: #fff4e0; padding: 6px 10px; border-radius: 4px; }
figure { margin: 10px 0 18px; } .maps { display: flex; flex-wrap: wrap; gap: 18px; }
.chart { max-width: 100%; height: auto; } code { background: #f0f2f5; padding: 0 3px; }
"""


def page(title: str, sections: Sequence[str], meta: str) -> str:
    """The whole self-contained document."""
    ids = [(s.split('id="', 1)[1].split('"', 1)[0], s.split("<h2>", 1)[1].split("</h2>", 1)[0]) for s in sections]
    nav = " ".join(f'<a href="#{i}">{t}</a>' for i, t in ids)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)} · COLA Studio</title><style>{STYLE}</style></head>",
            f'<body><main><h1>{escape(title)}</h1><p class="meta">{escape(meta)}</p><nav>{nav}</nav>',
            *sections,
            "</main></body></html>",
            "",
        ]
    )


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>\n{body}\n</section>'


def figure(svg: str) -> str:
    return f"<figure>{svg}</figure>"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table; ``header`` is plain text, ``rows`` hold HTML (escape text before)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _finite(x: float | None) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def num(x: float | None, spec: str = ".3f") -> str:
    if not _finite(x):
        return "n/a"
    return format(x, spec) if abs(x) < 1e4 else f"{x:.3g}"  # a ratio over a zero dense score is huge


def interval(lo: float | None, hi: float | None, spec: str = ".3f") -> str:
    return f"[{num(lo, spec)}, {num(hi, spec)}]" if _finite(lo) and _finite(hi) else "n/a"


def p_value(p: float | None) -> str:
    if not _finite(p):
        return "n/a"
    return "&lt; 0.001" if p < 0.001 else f"{p:.3f}"


def verdict_colour(word: str) -> str:
    return VERDICT_COLOURS.get(word, "#b07d12")  # any other word (e.g. untestable): amber


def verdict(word: str) -> str:
    return f'<span class="verdict" style="background:{verdict_colour(word)}">{escape(word)}</span>'


def colour(names: Sequence[str], name: str) -> str:
    """The colour of one calibration set, the same in every chart of a report."""
    return PALETTE[list(names).index(name) % len(PALETTE)] if name in names else PALETTE[-1]


def compression_text(settings: Mapping) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def compression_names(cfg: ExperimentConfig) -> dict[str, str]:
    """Each compression label of a config (as claims name it) → the setting as people write it:
    ``method=wanda-sparsity=0.5`` → "Wanda 50%" (:func:`~cola_core.experiments.config.compression_name`)."""
    return {compression_label(c): compression_name(compression_label(c)) for c in cfg.compression}


def has_layer_errors(report_json: str | None) -> bool:
    layers = json.loads(report_json or "{}").get("layers", [])
    return bool(layers) and all("linears" in layer for layer in layers)


def layer_errors_section(runs: pd.DataFrame, groups: Mapping[str, str] | None = None) -> str:
    """Mean relative reconstruction error per decoder layer and run, as stored in each run's report;
    with ``groups`` (run label → group, e.g. an experiment's set × setting) averaged per group, so a
    grid of many seeds draws one line per set rather than one per run."""
    errors = layer_errors(runs)
    if groups:
        errors = (
            errors.assign(run=errors["run"].map(groups))
            .groupby(["run", "layer"], sort=False, as_index=False)
            .agg(mean_error=("mean_error", "mean"), max_error=("max_error", "max"))
        )
    series = {
        run: list(zip(g["layer"].astype(float), g["mean_error"], strict=True))
        for run, g in errors.groupby("run", sort=False)
    }
    svg = line_chart(
        series, title="Mean relative error ‖WX − ŴX‖² / ‖WX‖² per layer", x_label="decoder layer", y_label="error"
    )
    rows = [
        [escape(run), num(g["mean_error"].mean(), ".4f"), num(g["max_error"].max(), ".4f"), str(len(g))]
        for run, g in errors.groupby("run", sort=False)
    ]
    text = "<p>On the calibration tokens, per linear layer, averaged over each decoder layer's linears.</p>"
    body = text + figure(svg) + table(["run", "mean error", "max error", "layers"], rows)
    return section("Per-layer errors", body, "layers")


def _stage_cells(spec, cfg: ExperimentConfig, trail: SetTrail, budget: Mapping | None) -> list[str]:
    c = cfg.curate_config(spec, trail.seed)
    stage1 = f"corpora: {', '.join(c.corpora)}; " + (
        "Stage 1 mix (corpus scores)" if c.stage1 else "equal shares (Stage 1 mix off)"
    )
    stage2 = f"{c.processing.seqlen} tokens per sample, {c.processing.mode}"
    entry = STRATEGY_REGISTRY.get(c.strategy)  # a config's sets are checked when they run, not here
    stage3 = f"{c.strategy}" + (f" λ={c.lam}" if entry and "lam" in entry.knobs else "") + f", n={c.n}"
    if trail.verified and trail.stage1 is not None and trail.stage2 is not None:
        lines = describe_stages(trail.stage1, trail.stage2)
        stage1, stage2 = lines["Stage 1 · which data"], lines["Stage 2 · how it is shaped"]
    if trail.verified and trail.metrics:
        m = trail.metrics
        mix = ", ".join(f"{c} {k}" for c, k in m.get("mix", {}).items())
        cover = ", ".join(f"{c} {v:.2f}" for c, v in m.get("capability_coverage", {}).items())
        stage3 += (
            f"; representativeness {m['representativeness']:.3f}, diversity {m['diversity_mean']:.3f}, "
            f"cluster coverage {m['cluster_coverage']:.0%}; mix {mix}; {m['tokens']:,} tokens; "
            f"probe coverage {cover}"
        )
    elif budget:
        tokens = budget.get("tokens")
        mix = ", ".join(f"{c} {v:g}" for c, v in budget.items() if c != "tokens" and v)
        stage3 += f"; stored: {num(tokens, ',.0f')} tokens" + (f", mix {mix}" if mix else "") + " (mean over seeds)"
    return [escape(spec.name), escape(stage1), escape(stage2), escape(stage3), escape(trail.status)]


def trail_section(cfg: ExperimentConfig, trails: Mapping[str, SetTrail], budgets: pd.DataFrame | None) -> str:
    """Per calibration set: Stage 1 (which data), Stage 2 (how it is shaped), Stage 3 (what was selected)."""
    rows = []
    for spec in cfg.calibration_sets:
        budget = None
        if budgets is not None and not budgets.empty and spec.name in budgets.index:
            budget = budgets.loc[spec.name].to_dict()
        rows.append(_stage_cells(spec, cfg, trails[spec.name], budget))
    text = (
        "<p>The settings come from the experiment's config. The rest is each set rebuilt at its first "
        "finished seed and shown only when its tokens match the stored run's fingerprint.</p>"
    )
    head = ["set", "Stage 1 · which data", "Stage 2 · how it is shaped", "Stage 3 · selection", "trail"]
    return section("The COLA stages, set by set", text + table(head, rows), "trail")


def map_section(trails: Mapping[str, SetTrail]) -> str:
    """Each verified set's pool on the first two principal components of its activation space."""
    maps = [
        scatter_map(t.xy, t.corpora, t.selected, title=f"{t.calibration} · seed {t.seed} (PCA)")
        for t in trails.values()
        if t.verified and t.xy
    ]
    missing = [f"<li>{escape(t.calibration)}: {escape(t.status)}</li>" for t in trails.values() if not t.verified]
    text = (
        "<p>Every pool sample placed by the first two principal components of its activations (the "
        "dashboard's PCA view), coloured by corpus; the selected calibration samples are ringed.</p>"
    )
    body = (text + f'<div class="maps">{"".join(figure(m) for m in maps)}</div>') if maps else ""
    if missing:
        body += "<p>No map for:</p><ul>" + "".join(missing) + "</ul>"
    return section("The map", body, "map")
