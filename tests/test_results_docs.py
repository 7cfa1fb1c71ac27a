"""The committed result of the paper-claims experiment is the shipped config's, and the docs carry its
claims table exactly as the command wrote it (tables produced by commands stay produced by commands)."""

from pathlib import Path

import pytest

from cola_core.experiments.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def _claims_table(report: str) -> list[str]:
    lines = report.split("## Claims", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| claim |"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    return lines[start:end]


NAMES = ("paper-claims", "paper-claims-confirm")


@pytest.mark.parametrize("name", NAMES)
def test_the_committed_report_is_of_the_shipped_config_and_complete(name):
    cfg = load_config(name)
    report = (ROOT / "results" / f"{name}.md").read_text(encoding="utf-8")
    assert f"seeds {list(cfg.seeds)}" in report and f"up to {cfg.limit} held-out items" in report
    assert "**Incomplete**" not in report
    assert len(_claims_table(report)) == 2 + len(cfg.claims)


@pytest.mark.parametrize("name", NAMES)
def test_the_docs_carry_the_reports_claims_table_verbatim(name):
    report = (ROOT / "results" / f"{name}.md").read_text(encoding="utf-8")
    docs = (ROOT / "docs" / "experiments.md").read_text(encoding="utf-8")
    assert "\n".join(_claims_table(report)) in docs


def test_the_confirmation_is_the_same_experiment_on_other_seeds():
    main, confirm = load_config("paper-claims"), load_config("paper-claims-confirm")
    assert not set(main.seeds) & set(confirm.seeds) and len(confirm.seeds) == len(main.seeds)
    same = ("curation", "limit", "capabilities", "calibration_sets", "compression", "claims")
    assert all(getattr(main, f) == getattr(confirm, f) for f in same)
