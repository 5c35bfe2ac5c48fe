"""Roofline: arithmetic intensity vs TFLOP/s with tensor, exponential-unit and memory ceilings."""

import streamlit as st

from app import charts, widgets
from perfmodel.reporting import SECTION_INTRO, roofline_display

sel = widgets.selection()
st.title("Roofline")
st.caption(SECTION_INTRO["roofline"] + f" All {sel.dtype} configs of the run.")
r = sel.for_dtype("roofline")
st.plotly_chart(charts.roofline_figure(r), key="roofline")
st.dataframe(roofline_display(r), hide_index=True, width="stretch")
