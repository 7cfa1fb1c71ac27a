"""The committed result of the paper-claims experiment is the shipped config's, and the docs carry its
claims table exactly as the command wrote it (tables produced by commands stay produced by commands)."""

from pathlib import Path

import pytest

from cola_core.experiments.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def _claims_table(report: str) -> list[str]:
    """The primary family's table (the first under the claims heading)."""
    lines = report.split("## Claims", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| claim |"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    return lines[start:end]


NAMES = ("paper-claims", "paper-claims-models", "reasoning-traces")


@pytest.mark.parametrize("name", NAMES)
def test_the_committed_report_is_of_the_shipped_config_and_complete(name):
    cfg = load_config(name)
    report = (ROOT / "results" / f"{name}.md").read_text(encoding="utf-8")
    assert f"seeds {list(cfg.seeds)}" in report and f"up to {cfg.limit} held-out items" in report
    assert "**Incomplete**" not in report
    primaries = [c for c in cfg.claims if c.get("family", "primary") == "primary"]
    assert len(_claims_table(report)) == 2 + len(primaries)
    assert all(f"## Model {m}" in report for m in cfg.models)


@pytest.mark.parametrize("name", NAMES)
def test_the_docs_carry_the_reports_claims_table_verbatim(name):
    report = (ROOT / "results" / f"{name}.md").read_text(encoding="utf-8")
    docs = (ROOT / "docs" / "experiments.md").read_text(encoding="utf-8")
    assert "\n".join(_claims_table(report)) in docs


def test_the_models_run_confirms_on_other_seeds_with_the_same_sets_and_claims():
    """paper-claims-models repeats paper-claims' comparisons on seeds it never used (on cola-tiny, the
    out-of-sample confirmation) and on two more variants: same set definitions, settings and claims."""
    main, models = load_config("paper-claims"), load_config("paper-claims-models")
    assert not set(main.seeds) & set(models.seeds) and len(models.models) >= 3
    sets = {s.name: s for s in main.calibration_sets}
    assert all(sets[s.name] == s for s in models.calibration_sets)
    assert all(c in main.compression for c in models.compression) and all(c in main.claims for c in models.claims)
    same = ("curation", "limit", "capabilities", "cluster_items")
    assert all(getattr(main, f) == getattr(models, f) for f in same)
