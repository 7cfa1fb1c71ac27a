"""Tiny end to end through the CLI, each step a fresh process as a user runs it (curate → compress →
evaluate on cola-tiny), and the dashboard's cold start (``streamlit run app.py`` until the server
answers, until the landing page shows in Chromium when it is installed, and until Setup, one click
later, shows the loaded model).

Each run uses a fresh, empty cache directory, so nothing is reused from earlier runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


def _timed(args: list[str], env: dict) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cola_core", *args], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def pipeline() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "COLA_CACHE_DIR": f"{tmp}/cache", "HF_HUB_OFFLINE": "1"}
        calib, out = f"{tmp}/calib.jsonl", f"{tmp}/wanda50"
        steps = {
            "curate": _timed(
                [
                    "curate",
                    "--model",
                    "cola-tiny",
                    "--corpora",
                    "prose,code,math,facts",
                    "--pool-size",
                    "1000",
                    "--n",
                    "64",
                    "--seqlen",
                    "128",
                    "--strategy",
                    "tradeoff",
                    "--out",
                    calib,
                ],
                env,
            ),
            "compress": _timed(
                [
                    "compress",
                    "--model",
                    "cola-tiny",
                    "--calib",
                    calib,
                    "--method",
                    "wanda",
                    "--sparsity",
                    "0.5",
                    "--seqlen",
                    "128",
                    "--out",
                    out,
                ],
                env,
            ),
            "evaluate": _timed(["evaluate", "--model", out, "--limit", "100"], env),
        }
    return {**steps, "total": sum(steps.values())}


def dashboard_cold_start() -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "COLA_CACHE_DIR": f"{tmp}/cache", "HF_HUB_OFFLINE": "1"}
        t = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.headless",
                "true",
                "--server.port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            row = {"server_up": time.perf_counter() - t}
            if Path(CHROMIUM).exists():
                from playwright.sync_api import expect, sync_playwright

                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
                    page = browser.new_page()
                    page.goto(f"http://127.0.0.1:{port}")
                    expect(page.get_by_role("heading", name="COLA Studio")).to_be_visible(timeout=120_000)
                    row["landing"] = time.perf_counter() - t
                    page.get_by_role("button", name="Start: choose the model and corpora on Setup →").click()
                    expect(page.get_by_text("Loaded cola-tiny")).to_be_visible(timeout=120_000)
                    row["first_page"] = time.perf_counter() - t
                    browser.close()
            return row
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def run() -> dict:
    out = {"pipeline": pipeline(), "dashboard": dashboard_cold_start()}
    print(out, flush=True)
    return out


def to_markdown(r: dict) -> str:
    p, d = r["pipeline"], r["dashboard"]
    first = f"{d['first_page']:.1f} s" if "first_page" in d else "— (no Chromium)"
    landing = f"{d['landing']:.1f} s" if "landing" in d else "—"
    return "\n".join(
        [
            "| tiny end to end (fresh processes, empty cache) | curate | compress | evaluate | total | goal |",
            "|---|---|---|---|---|---|",
            f"| cola-tiny: 1,000-sample pool → 64 × 128 tradeoff → Wanda 50% → 4 capabilities × 100 items | {p['curate']:.1f} s | "
            f"{p['compress']:.1f} s | {p['evaluate']:.1f} s | {p['total']:.1f} s | ≤ 60 s |",
            "",
            "| dashboard cold start | server answers | landing page shown (Chromium) | "
            "Setup interactive (model loaded, one click later) |",
            "|---|---|---|---|",
            f"| `streamlit run app.py`, empty cache | {d['server_up']:.1f} s | {landing} | {first} |",
        ]
    )
