"""The sidebar every page shares (run, dtype and config filters) and the selection it yields.

The entrypoint (streamlit_app.py) draws the sidebar on every rerun, before the page, so the choices persist
across pages; pages read the result with `selection()`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from app import data

_KEY = "_perfmodel_selection"


@dataclass
class Selection:
    run_dir: str
    info: dict
    tables: dict
    dtype: str | None
    config_id: str | None

    def for_dtype(self, name: str) -> pd.DataFrame:
        """Rows of analysis table `name` in the chosen dtype (all configs)."""
        df = self.tables[name]
        if self.dtype and "dtype" in df.columns:
            df = df[df["dtype"] == self.dtype]
        return df

    def for_config(self, name: str) -> pd.DataFrame:
        """Rows of analysis table `name` for the chosen config."""
        df = self.tables[name]
        if self.config_id and "config_id" in df.columns:
            df = df[df["config_id"] == self.config_id]
        return df


def sidebar() -> Selection | None:
    """Draw the run / dtype / config pickers; store and return the selection (None when no run loads)."""
    dirs, err = data.safe(data.run_dirs)
    if err:
        st.sidebar.error(err)
        st.session_state[_KEY] = None
        return None
    infos = {}
    for d in dirs:
        info, e = data.safe(data.run_info, d)
        infos[d] = info or {"label": f"{d} (unreadable: {e})", "gpu": "?", "run_id": d}
    run_dir = st.sidebar.selectbox("Run", dirs, format_func=lambda d: infos[d]["label"], key="run_dir")
    info = infos[run_dir]
    st.sidebar.markdown(f"**GPU:** {info['gpu']}")
    tables, err = data.safe(data.bundle, run_dir)
    if err:
        st.sidebar.error(err)
        st.session_state[_KEY] = None
        return None
    configs = tables["stages"][["config_id", "dtype"]].drop_duplicates()
    dtypes = sorted(configs["dtype"].unique().tolist())
    dtype = st.sidebar.selectbox("dtype", dtypes, key="dtype") if dtypes else None
    ids = configs[configs["dtype"] == dtype]["config_id"].tolist() if dtype else []
    # it opens on the plan's seed config (the first config the gates cover) where the run has it
    config_id = st.sidebar.selectbox("Config", ids, index=data.default_config(ids), key="config_id") if ids else None
    if info.get("note"):
        st.sidebar.caption(info["note"])
    sel = Selection(run_dir=run_dir, info=info, tables=tables, dtype=dtype, config_id=config_id)
    st.session_state[_KEY] = sel
    return sel


def selection() -> Selection | None:
    """The sidebar's current selection; a page shows a message and stops when there is none. Every page calls it
    first, so the banner of a run that lacks a table it lists (`run_banner`) heads every page."""
    sel = st.session_state.get(_KEY)
    if sel is None:
        st.warning("No run could be loaded; see the message in the sidebar.")
        st.stop()
    run_banner(sel.info)
    return sel


def run_banner(info: dict) -> None:
    """A warning above the page when the run lacks a table it lists (data.run_info's `missing_tables`)."""
    if info.get("missing_tables"):
        st.warning(info["missing_tables"], icon=":material/warning:")


def status_style(df: pd.DataFrame):
    """Gate table with status cells coloured (pass green, fail red, not measured grey, report amber)."""
    colors = {"pass": "#e6f4ea", "fail": "#fde7e9", "not_measured": "#f1f3f4", "report": "#fef7e0"}
    return df.style.map(lambda v: f"background-color: {colors.get(v, '')}", subset=["status"])


# the gate table's columns, wide enough for every status ("not_measured" was cut to "not_me") and for the text
GATE_COLUMNS = {"status": st.column_config.TextColumn("status", width=110),
                "detail": st.column_config.TextColumn("detail", width="large"),
                "plan says": st.column_config.TextColumn("plan says", width="medium")}
