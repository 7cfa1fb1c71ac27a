"""The dashboard's flow, Setup → Space → Compress → Compare: where a session stands in it (from its
session state and the run store), the stepper that shows it, and the link to what to click next."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from cola_core.app.compare import finished_runs
from cola_core.app.demo_job import demo_runner
from cola_core.app.jobs import job_queue
from ui import state

# (name, page, what the user does there, the call to action when it is the next step)
STEPS = (
    ("Setup", "pages/setup.py", "model, corpora, Stages 1–2", "Start: choose the model and corpora on Setup"),
    (
        "Space",
        "pages/space.py",
        "map, Stage 3 selection",
        "Next: build the activation space and pick samples",
    ),
    ("Compress", "pages/compress.py", "prune or quantize", "Next: compress with your calibration set"),
    ("Compare", "pages/compare.py", "retention per capability", "Next: compare the compressed models"),
)
# plain symbols every text font has: no icon font fetched from Google (offline, issue #30), no emoji font needed
ICONS = {"done": "✔", "next": "→", "later": "○"}
COLOURS = {"done": "green", "next": "blue", "later": "gray"}


@dataclass(frozen=True)
class Step:
    name: str
    page: str
    what: str
    action: str
    status: str  # done | next | later


def steps(model_loaded: bool, space_built: bool, runs_finished: int, runs_active: int = 0) -> list[Step]:
    """Each step's status. A step counts as done when its own result exists or any later one does (a
    space is built from some setup); the first step not done is next. Compare is never done: once a
    run has finished it stays the next step."""
    facts = [model_loaded, space_built, runs_finished > 0, False]
    done = [any(facts[i:]) for i in range(len(facts))]
    first_open = done.index(False)
    out = []
    for i, (name, page, what, action) in enumerate(STEPS):
        if name == "Compress" and runs_active and not runs_finished:
            action = "Watch your compression run on Compress"
        status = "done" if done[i] else "next" if i == first_open else "later"
        out.append(Step(name, page, what, action, status))
    return out


def session_steps() -> list[Step]:
    """This session's steps, not the server's: the model Setup loaded, the space built, and the runs
    this session launched (or the demo it ran) that finished, or are still queued or running."""
    settings = state.built_space()
    model = settings.model if settings else state.get("model")
    mine = set(state.get("launched"))
    if state.get("demo_landed") is not None:  # the demo this session started counts as its runs
        mine |= set(demo_runner(job_queue().store).run_ids())
    runs = finished_runs(job_queue().store, model)
    active = sum(j["status"] in ("queued", "running") and j["run_id"] in mine for j in job_queue().snapshot())
    return steps(bool(state.get("model_loaded")), settings is not None, int(runs["id"].isin(mine).sum()), active)


def link(page: str, label: str, icon: str | None = None, where=st) -> None:
    """A link to one of the app's pages; where a page script runs on its own (``streamlit run
    pages/x.py``, AppTest of one page) there is no navigation to link into, so the label is shown bold."""
    try:
        where.page_link(page, label=label, icon=icon)
    except StreamlitPageNotFoundError:
        where.markdown(f"**{label}**")


def draw_stepper(flow: list[Step]) -> None:
    """One card per step: its status symbol, number and name (a link to its page), what happens there,
    and its status (done, next or later) in its own colour."""
    for number, (step, col) in enumerate(zip(flow, st.columns(len(flow)), strict=True), 1):
        box = col.container(border=True)
        link(step.page, f"{ICONS[step.status]} {number}. {step.name}", where=box)
        box.caption(f":{COLOURS[step.status]}[**{step.status}**] · {step.what}")


def next_step(flow: list[Step]) -> Step:
    """The step to do next (Compare, once every earlier one is done)."""
    return next(s for s in flow if s.status == "next")
