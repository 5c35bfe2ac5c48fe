"""Batching: per-sequence speed-up as the batch grows, against the plan's 5x gate; a run without the batching
suite says which command measures it."""

import streamlit as st

from app import charts, data, tables, widgets
from perfmodel.reports.displays import batching_display
from perfmodel.reports.report_data import SECTION_INTRO

sel = widgets.selection()
st.title("Batching")
st.caption(SECTION_INTRO["batching"])
b = sel.for_dtype("batching")
why = sel.info.get("unmeasured") or (None if not b.empty else "this run did not measure the batching suite; "
                                     f"`{data.batching_command()}` measures it (as `perfmodel gates` says)")
st.plotly_chart(charts.batching_figure(b, why=why and why.replace("`", "")), key="batching")
if b.empty:
    st.info(f"No batching measurements: {why}.")
else:
    st.dataframe(batching_display(sel.for_dtype("batching_summary")), hide_index=True, width="stretch")
    st.subheader("Every case")
    st.dataframe(tables.batching_cases_display(b, sel.tables["correctness"]), hide_index=True, width="stretch")
