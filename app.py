"""COLA Studio dashboard: ``streamlit run app.py``. Pages live in ``pages/``; logic in ``cola_core``."""

import streamlit as st

st.set_page_config(page_title="COLA Studio", layout="wide")
nav = st.navigation(
    [
        st.Page("pages/setup.py", title="Setup", icon=":material/tune:"),
        st.Page("pages/space.py", title="Activation space & selection", icon=":material/scatter_plot:"),
        st.Page("pages/compress.py", title="Compress", icon=":material/compress:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
    ]
)
nav.run()
