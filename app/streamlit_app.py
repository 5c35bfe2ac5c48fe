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
# No page icons: Streamlit makes a page's Material icon the tab's favicon by asking fonts.gstatic.com for it on
# every page load (nothing the dashboard draws needs the network otherwise, and offline it fails).
pages = [
    st.Page(f"{PAGES}/overview.py", title="Overview", default=True),
    st.Page(f"{PAGES}/stages.py", title="Stages"),
    st.Page(f"{PAGES}/constraints.py", title="Constraints"),
    st.Page(f"{PAGES}/stalls.py", title="Stalls"),
    st.Page(f"{PAGES}/timeline.py", title="Inside the kernel"),
    st.Page(f"{PAGES}/roofline.py", title="Roofline"),
    st.Page(f"{PAGES}/batching.py", title="Batching"),
    st.Page(f"{PAGES}/correctness.py", title="Correctness"),
    st.Page(f"{PAGES}/runs.py", title="Runs"),
]
nav = st.navigation(pages)
widgets.sidebar()
nav.run()
