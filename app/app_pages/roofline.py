"""Roofline: arithmetic intensity vs TFLOP/s with tensor, exponential-unit and memory ceilings, at the sidebar's
config (labelled points) or every config of its dtype."""

import streamlit as st

from app import charts, widgets
from perfmodel.reports.displays import roofline_display
from perfmodel.reports.report_data import SECTION_INTRO

sel = widgets.selection()
st.title("Roofline")
st.caption(SECTION_INTRO["roofline"])
scope = st.radio("Cases", ["this config", f"every {sel.dtype} config"], horizontal=True, key="roofline_scope")
r = sel.for_config("roofline") if scope == "this config" else sel.for_dtype("roofline")
st.plotly_chart(charts.roofline_figure(r, why=sel.info.get("unmeasured") or None), key="roofline")
if not r.empty:
    st.dataframe(roofline_display(r), hide_index=True, width="stretch")
