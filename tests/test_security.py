"""Security promises that can be checked statically or cheaply (the rest: test_uploads, test_benchmarks'
sandbox cases, test_bad_input)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for d in ("cola_core", "pages", "bench") for p in (ROOT / d).rglob("*.py")] + [ROOT / "app.py"]


def test_nothing_unpickles():
    banned = re.compile(
        r"\bimport pickle\b|pickle\.(loads?|Unpickler)\b|torch\.load\(|allow_pickle\s*=\s*True|joblib\.load|cloudpickle"
    )
    hits = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in SOURCES
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if banned.search(line)
    ]
    assert not hits, hits


def test_remote_code_is_never_trusted_implicitly():
    hits = [str(p.relative_to(ROOT)) for p in SOURCES if re.search(r"trust_remote_code\s*=\s*True", p.read_text())]
    assert not hits, hits


def test_dashboard_binds_to_localhost_with_xsrf_and_an_upload_cap():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "localhost" and cfg["server"]["enableXsrfProtection"] is True
    assert cfg["server"]["maxUploadSize"] == 200


def test_trust_remote_code_is_announced(tmp_path):
    from tests.test_cli import run_cli

    out = run_cli("evaluate", "--model", "no-such-model", "--trust-remote-code")
    assert "warning: --trust-remote-code runs Python code" in out.stderr
