"""Stages: measured TFLOP/s against the Einstein bands, each stage's bound and the roofline."""

import streamlit as st

from app import charts, widgets
from perfmodel.gpu_state import throttled_line
from perfmodel.reporting import SECTION_INTRO, regressions_display, stages_display

sel = widgets.selection()
st.title("Stages")
st.caption(SECTION_INTRO["stages"])
stages = sel.for_config("stages")
st.plotly_chart(charts.stages_figure(stages, sel.for_config("peers")), key="stages")
st.plotly_chart(charts.terms_figure(stages), key="terms")
if not stages.empty:
    st.caption(f"Bound GPU: {stages['bound_gpu'].iloc[0]}")
throttled = throttled_line(stages)
if throttled:  # the table's `throttled` column names each case's reasons
    st.warning(throttled)
st.dataframe(stages_display(stages), hide_index=True, width="stretch")
reg = sel.for_config("regressions")
if not reg.empty:
    st.warning("A stage is slower than the stage before it beyond noise (the check the plan forgot); the ablation "
               "of the technique it adds is beside it.")
    st.dataframe(regressions_display(reg), hide_index=True, width="stretch")
