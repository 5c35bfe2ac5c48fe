"""Entrypoint of the dashboard: `perfmodel dashboard [RUN ...]` runs `streamlit run` on this file.

It draws the shared sidebar (run, dtype, config) and the navigation over the pages in app_pages/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

try:
    from app import widgets
except ImportError:  # `streamlit run app/streamlit_app.py` from a checkout that was not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from app import widgets

st.set_page_config(page_title="perfmodel: predicted vs measured", layout="wide")

PAGES = "app_pages"  # relative to this file, as st.Page resolves it
pages = [
    st.Page(f"{PAGES}/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page(f"{PAGES}/stages.py", title="Stages", icon=":material/stacked_line_chart:"),
    st.Page(f"{PAGES}/constraints.py", title="Constraints", icon=":material/rule:"),
    st.Page(f"{PAGES}/stalls.py", title="Stalls", icon=":material/hourglass_top:"),
    st.Page(f"{PAGES}/roofline.py", title="Roofline", icon=":material/roofing:"),
    st.Page(f"{PAGES}/batching.py", title="Batching", icon=":material/view_module:"),
    st.Page(f"{PAGES}/correctness.py", title="Correctness", icon=":material/fact_check:"),
    st.Page(f"{PAGES}/runs.py", title="Runs", icon=":material/compare_arrows:"),
]
nav = st.navigation(pages)
widgets.sidebar()
nav.run()
