"""An experiment's report: the retention table from the run store, mean retention over seeds with
t-intervals, the claims judged on seed-paired differences, the proxy's rank correlation with measured
retention, and the markdown the docs carry (produced by ``python -m cola_core experiment``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from cola_core.evaluation.retention import retention_rows, spearman
from cola_core.evaluation.runstore import RunStore
from cola_core.experiments.config import ExperimentConfig, compression_label

T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def retention_table(cfg: ExperimentConfig, store: RunStore) -> pd.DataFrame:
    """One row per (calibration set, compression, seed, capability): retention with its interval."""
    runs = store.runs(cfg.name)
    runs = runs[runs["status"] == "done"]
    dense = runs[runs["calibration"] == "dense"]
    if dense.empty:
        return pd.DataFrame()
    dense_id = int(dense.iloc[0]["id"])
    rows = []
    for _, run in runs[runs["calibration"] != "dense"].iterrows():
        proxy = json.loads(run["report"] or "{}").get("proxy", {})
        for r in retention_rows(store, int(run["id"]), dense_id):
            rows.append(
                {
                    "calibration": run["calibration"],
                    "compression": compression_label(json.loads(run["settings"])),
                    "seed": run["seed"],
                    "capability": r["capability"],
                    "retention": r["retention"],
                    "ci_low": r["ret_low"],
                    "ci_high": r["ret_high"],
                    "score": r["compressed"],
                    "coverage": proxy.get(r["capability"].split("_")[0], np.nan),
                }
            )
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean retention over seeds ± a t-interval, per calibration set × compression × capability."""

    def agg(g: pd.DataFrame) -> pd.Series:
        x = g["retention"].to_numpy()
        half = T95.get(len(x) - 1, 1.96) * x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
        return pd.Series(
            {
                "mean": x.mean(),
                "ci_low": x.mean() - half,
                "ci_high": x.mean() + half,
                "seeds": len(x),
                "coverage": g["coverage"].mean(),
            }
        )

    return table.groupby(["compression", "capability", "calibration"]).apply(agg, include_groups=False).reset_index()


def judge_claim(summary: pd.DataFrame, table: pd.DataFrame, claim: dict) -> dict:
    """``{"better": set A, "worse": set B, "capability", "compression"}``: supported when A's retention
    beats B's with a 95% t-interval of the seed-paired difference above zero, not supported when below."""
    sub = table[(table["capability"] == claim["capability"]) & (table["compression"] == claim["compression"])]
    a = sub[sub["calibration"] == claim["better"]].set_index("seed")["retention"]
    b = sub[sub["calibration"] == claim["worse"]].set_index("seed")["retention"]
    diff = (a - b).dropna().to_numpy()
    if len(diff) < 2:
        return {
            **claim,
            "difference": float("nan"),
            "ci_low": float("nan"),
            "ci_high": float("nan"),
            "verdict": "inconclusive",
        }
    half = T95.get(len(diff) - 1, 1.96) * diff.std(ddof=1) / math.sqrt(len(diff))
    lo, hi = diff.mean() - half, diff.mean() + half
    verdict = "supported" if lo > 0 else "not supported" if hi < 0 else "inconclusive"
    return {**claim, "difference": float(diff.mean()), "ci_low": float(lo), "ci_high": float(hi), "verdict": verdict}


def proxy_correlation(table: pd.DataFrame) -> pd.DataFrame:
    """Per capability and compression: Spearman correlation between each calibration set's mean
    capability coverage (the curation proxy) and its mean measured retention."""
    rows = []
    for (comp, capability), g in table.groupby(["compression", "capability"]):
        means = g.groupby("calibration")[["coverage", "retention"]].mean().dropna()
        if len(means) >= 3:
            rho = spearman(means["coverage"], means["retention"])
            rows.append({"compression": comp, "capability": capability, "spearman": rho, "sets": len(means)})
    return pd.DataFrame(rows)


def markdown_report(cfg: ExperimentConfig, table: pd.DataFrame, command: str) -> str:
    summary = summarise(table)
    lines = [
        f"# Experiment `{cfg.name}`",
        "",
        cfg.description,
        "",
        f"Produced by `{command}`; model {cfg.model}, n = {cfg.n} × {cfg.seqlen} tokens, "
        f"seeds {list(cfg.seeds)}, {cfg.limit} held-out items per capability.",
        "",
        "## Claims",
        "",
        "| claim | capability | compression | retention difference (better − worse) | 95% CI | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for claim in cfg.claims:
        j = judge_claim(summary, table, claim)
        lines.append(
            f"| {claim['title']} ({claim['better']} vs {claim['worse']}) | {claim['capability']} | {claim['compression']} | "
            f"{j['difference']:+.3f} | [{j['ci_low']:+.3f}, {j['ci_high']:+.3f}] | **{j['verdict']}** |"
        )
    lines += ["", "## Retention (mean over seeds, 95% t-interval)", ""]
    for comp, g in summary.groupby("compression"):
        pivot = g.assign(cell=g.apply(lambda r: f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]", axis=1))
        pivot = pivot.pivot(index="calibration", columns="capability", values="cell")
        lines += [f"### {comp}", "", to_markdown(pivot), ""]
    corr = proxy_correlation(table)
    if not corr.empty:
        lines += [
            "## Does the proxy predict retention?",
            "",
            "Spearman rank correlation across calibration sets between capability "
            "coverage (computed at curation time) and measured retention:",
            "",
            to_markdown(corr.round(3), index=False),
            "",
        ]
    return "\n".join(lines)


def to_markdown(frame: pd.DataFrame, index: bool = True) -> str:
    """A GitHub table without the optional `tabulate` dependency."""
    frame = frame.reset_index() if index else frame
    cols = [str(c) for c in frame.columns]
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols), *rows])
