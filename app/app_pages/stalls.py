"""Stalls: Nsight Compute warp stall reasons stacked per implementation (stages and peers)."""

import streamlit as st

from app import charts, widgets
from perfmodel.reports.displays import stalls_display
from perfmodel.reports.report_data import SECTION_INTRO

sel = widgets.selection()
st.title("Stall reasons")
st.caption(SECTION_INTRO["stalls"] + " Reasons attributed to a constraint carry its number.")
s = sel.for_config("stalls")
st.plotly_chart(charts.stalls_figure(s, why=sel.info.get("unmeasured") or None), key="stalls")
if not s.empty:
    st.dataframe(stalls_display(s), hide_index=True, width="stretch")
