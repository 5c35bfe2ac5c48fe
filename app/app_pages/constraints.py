"""Constraints: the plan's claimed gain vs the ablation gain (primary) vs the stage chain vs the Amdahl bound."""

import streamlit as st

from app import charts, widgets
from perfmodel.reports.displays import constraints_display, evidence_display, stall_shift_display
from perfmodel.reports.report_data import SECTION_INTRO

sel = widgets.selection()
st.title("Constraints")
st.caption(SECTION_INTRO["constraints"])  # it ends in ablation.FAIR_MEASURE: said once
ev = sel.for_config("evidence")
st.plotly_chart(charts.constraints_figure(ev), key="constraints")
st.subheader("Ablation: what each technique is worth alone")
st.dataframe(evidence_display(ev), hide_index=True, width="stretch")
shift = sel.for_config("stall_shift")
st.subheader("Stall reasons that moved when the technique was switched on")
if shift.empty:
    st.caption("No ablation variant of this config was profiled by Nsight Compute in this run.")
else:
    st.dataframe(stall_shift_display(shift), hide_index=True, width="stretch")
st.subheader("Stage chain: stage k against stage k−1")
st.caption("Everything the stage file changes, not the technique alone; shown for comparison with the ablation.")
st.dataframe(constraints_display(sel.for_config("constraints")), hide_index=True, width="stretch")
with st.expander("How each constraint is measured (stall reasons and time terms)", expanded=False):
    st.dataframe(sel.tables["mapping"], hide_index=True, width="stretch")
