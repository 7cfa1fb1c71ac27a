"""Dense vs compressed, as tidy frames for the dashboard's Compare page: retention per capability with
intervals, per-layer reconstruction error, the curation proxy against measured retention, and the
same prompts answered by each model."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import fields

import pandas as pd

from cola_core.compress import CompressConfig
from cola_core.errors import ColaError
from cola_core.evaluation.retention import retention_rows, spearman
from cola_core.evaluation.runstore import RunStore
from cola_core.evaluation.suite import answer_prompts
from cola_core.models.loading import load_model_cached


def setting_name(settings: Mapping) -> str:
    """A run's compression setting as people write it ("Wanda 50%", "GPTQ 3-bit g32"); "dense" for the
    dense evaluation, whose settings name no compression."""
    known = {f.name for f in fields(CompressConfig)}
    try:
        return CompressConfig(**{k: v for k, v in settings.items() if k in known}).short_name
    except (TypeError, ColaError):
        return str(settings.get("method", "?"))


def run_label(row: Mapping) -> str:
    settings = json.loads(row["settings"] or "{}")
    return f"#{row['id']} {setting_name(settings)} · {row['calibration']}"


def finished_runs(store: RunStore, model: str) -> pd.DataFrame:
    runs = store.runs()
    return runs[(runs["status"] == "done") & (runs["calibration"] != "dense") & (runs["model"] == model)]


def retention_table(store: RunStore, runs: pd.DataFrame, dense_run: Mapping[int, int]) -> pd.DataFrame:
    """One row per run × capability: dense and compressed scores, interval, retention and its interval.
    ``dense_run`` maps each run id to the dense evaluation with the same items."""
    rows = []
    for _, run in runs.iterrows():
        run_id = int(run["id"])
        label = {"run": run_label(run), "run_id": run_id}
        rows += [{**label, **row} for row in retention_rows(store, run_id, dense_run[run_id])]
    return pd.DataFrame(rows)


def layer_errors(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and max relative reconstruction error ‖WX − ŴX‖²/‖WX‖² per decoder layer and run."""
    rows = []
    for _, run in runs.iterrows():
        for layer in json.loads(run["report"] or "{}").get("layers", []):
            errs = [
                v["relative_error"] for v in layer.get("linears", {}).values() if v.get("relative_error") is not None
            ]
            if errs:
                rows.append(
                    {
                        "run": run_label(run),
                        "layer": layer["layer"],
                        "mean_error": sum(errs) / len(errs),
                        "max_error": max(errs),
                    }
                )
    return pd.DataFrame(rows, columns=["run", "layer", "mean_error", "max_error"])


def compact_names(names: Sequence[str]) -> str:
    """Linear names for a table cell, every expert's alike ones as one: ``mlp.gate,
    mlp.experts.*.gate_proj (×64), …`` for a mixture-of-experts group; a lone expert's name as it is."""
    first: dict[str, str] = {}
    counts: dict[str, int] = {}
    for name in names:
        key = re.sub(r"\.experts\.\d+\.", ".experts.*.", name, count=1)
        first.setdefault(key, name)
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(first[k] if counts[k] == 1 else f"{k} (×{counts[k]})" for k in first)


def awq_groups(runs: pd.DataFrame) -> pd.DataFrame:
    """AWQ's choices per run, layer and group of linears sharing an input (compress/awq.py): the
    exponent α, where the scales were folded (or why not), and the group's output error with plain
    RTN against AWQ on the calibration tokens. Empty for runs that did not use AWQ."""
    rows = []
    for _, run in runs.iterrows():
        for layer in json.loads(run["report"] or "{}").get("layers", []):
            for group in (layer.get("awq") or {}).get("groups", []):
                rows.append(
                    {
                        "run": run_label(run),
                        "layer": layer["layer"],
                        "linears": compact_names(group["linears"]),
                        "alpha": group["alpha"],
                        "folded into": group["fold"] or f"not folded: {group['fallback']}",
                        "error RTN": group["error_rtn"],
                        "error AWQ": group["error_awq"],
                    }
                )
    return pd.DataFrame(rows, columns=["run", "layer", "linears", "alpha", "folded into", "error RTN", "error AWQ"])


def expert_tokens(runs: pd.DataFrame) -> pd.DataFrame:
    """Mixture-of-experts runs: per run, layer and expert, the real calibration tokens the router sent
    it, the tokens its statistics came from, and whether it fell below the floor and took every token
    (compress/experts.py). Empty for dense models."""
    rows = []
    for _, run in runs.iterrows():
        for layer in json.loads(run["report"] or "{}").get("layers", []):
            for module, e in (layer.get("experts") or {}).items():
                for expert, routed in enumerate(e["routed_tokens"]):
                    rows.append(
                        {
                            "run": run_label(run),
                            "layer": layer["layer"],
                            "expert": f"{module}.{expert}",
                            "routed tokens": routed,
                            "statistic tokens": (e.get("statistic_tokens") or [None] * e["experts"])[expert],
                            "floor": e["floor_tokens"],
                            "took every token": e["calibration"] == "all" or expert in e["all_tokens_for"],
                        }
                    )
    columns = ["run", "layer", "expert", "routed tokens", "statistic tokens", "floor", "took every token"]
    return pd.DataFrame(rows, columns=columns)


def proxy_vs_retention(runs: pd.DataFrame, table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(points, correlations): each run's capability coverage at curation time against its measured
    retention, and per capability the Spearman rank correlation over runs (NaN with < 3 runs)."""
    coverage = {int(r["id"]): json.loads(r["settings"] or "{}").get("proxy", {}) for _, r in runs.iterrows()}
    points = table.assign(
        coverage=[
            coverage.get(i, {}).get(c.split("_")[0]) for i, c in zip(table["run_id"], table["capability"], strict=True)
        ]
    ).dropna(subset=["coverage"])
    corr = []
    for cap, g in points.groupby("capability"):
        rho = spearman(g["coverage"], g["retention"])
        corr.append({"capability": cap, "spearman": rho, "runs": len(g)})
    return points[["run", "capability", "coverage", "retention"]], pd.DataFrame(
        corr, columns=["capability", "spearman", "runs"]
    )


def answers_side_by_side(models: Mapping[str, str], prompts: Sequence[str], max_new_tokens: int = 40) -> pd.DataFrame:
    """Greedy answers of each model (label → name or directory) to the same prompts, one column each."""
    frame = pd.DataFrame({"prompt": list(prompts)})
    for label, ref in models.items():
        loaded = load_model_cached(ref)
        frame[label] = list(answer_prompts(loaded.model, loaded.tokenizer, prompts, max_new_tokens).values())
    return frame
