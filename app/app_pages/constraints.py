"""Constraints: the plan's claimed gain vs the measured gain vs the Amdahl bound from the counters."""

import streamlit as st

from app import charts, widgets
from perfmodel.report import SECTION_INTRO, constraints_display

sel = widgets.selection()
st.title("Constraints")
st.caption(SECTION_INTRO["constraints"])
c = sel.for_config("constraints")
st.plotly_chart(charts.constraints_figure(c), key="constraints")
st.dataframe(constraints_display(c), hide_index=True, width="stretch")
with st.expander("How each constraint is measured (stall reasons and time terms)", expanded=True):
    st.dataframe(sel.tables["mapping"], hide_index=True, width="stretch")
