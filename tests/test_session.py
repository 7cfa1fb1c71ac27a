"""State that survives a reload (issue #30): the URL holds ?session=<id>, the server keeps the session's
settings, λ, lasso edits and Compare's choice under cache/sessions/<id>.json, and a new browser session
with that id (a reload, or a shared link) starts where the last one stood."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _page():
    import streamlit as st

    from ui import state

    state.init()
    st.write(
        f"lam={st.session_state['lam']} exclude={st.session_state['exclude']} corpora={st.session_state['corpora']}"
    )


def test_a_reload_restores_lambda_and_exclusions(tmp_path, monkeypatch):
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    at = AppTest.from_function(_page)
    at.run()
    session = at.query_params["session"]
    session = session if isinstance(session, str) else session[0]
    assert len(session) == 32 and not (tmp_path / "sessions").exists()  # nothing changed: nothing saved
    at.session_state["lam"] = 0.25
    at.session_state["exclude"] = ["code-0001", "code-0002"]
    at.run()
    assert (tmp_path / "sessions" / f"{session}.json").is_file()

    reloaded = AppTest.from_function(_page)
    reloaded.query_params["session"] = session
    reloaded.run()
    assert not reloaded.exception
    assert reloaded.markdown[0].value.startswith("lam=0.25 exclude=['code-0001', 'code-0002']")

    fresh = AppTest.from_function(_page)  # another id: the defaults
    fresh.query_params["session"] = "../../etc/passwd"  # not an id: replaced, never a path
    fresh.run()
    replaced = fresh.query_params["session"]
    replaced = replaced if isinstance(replaced, str) else replaced[0]
    assert replaced != session and len(replaced) == 32 and "lam=0.5" in fresh.markdown[0].value
