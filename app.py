"""COLA Studio dashboard: ``streamlit run app.py``. Pages live in ``pages/``; logic in ``cola_core``."""

import streamlit as st

from cola_core.curation.map2d import warm_up

warm_up()  # numba compiles UMAP in the background while the user reads the first pages (once per server)
st.set_page_config(page_title="COLA Studio", layout="wide")
nav = st.navigation(
    [
        st.Page("pages/home.py", title="Start", default=True),
        st.Page("pages/setup.py", title="Setup"),
        st.Page("pages/space.py", title="Activation space & selection"),
        st.Page("pages/compress.py", title="Compress"),
        st.Page("pages/compare.py", title="Compare"),
    ]
)
nav.run()
