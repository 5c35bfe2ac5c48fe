"""Stages: measured TFLOP/s against the Einstein bands, the analytic model and the bound."""

import streamlit as st

from app import charts, widgets
from perfmodel.report import SECTION_INTRO, stages_display

sel = widgets.selection()
st.title("Stages")
st.caption(SECTION_INTRO["stages"])
stages = sel.for_config("stages")
st.plotly_chart(charts.stages_figure(stages, sel.for_config("peers")), key="stages")
st.plotly_chart(charts.terms_figure(stages), key="terms")
if not stages.empty:
    st.caption(f"Analytic model GPU: {stages['analytic_gpu'].iloc[0]}")
st.dataframe(stages_display(stages), hide_index=True, width="stretch")
