"""Batching: per-sequence speed-up as the batch grows, against the plan's 5x gate."""

import streamlit as st

from app import charts, widgets
from perfmodel.reporting import SECTION_INTRO, batching_display

sel = widgets.selection()
st.title("Batching")
st.caption(SECTION_INTRO["batching"])
b = sel.for_dtype("batching")
st.plotly_chart(charts.batching_figure(b), key="batching")
st.dataframe(batching_display(sel.for_dtype("batching_summary")), hide_index=True, width="stretch")
st.dataframe(b.drop(columns=["run_id"]), hide_index=True, width="stretch")
