"""Correctness: every case's output against the float64 reference, its error budget and the plan's two checks, and
the output against the reference rounded to the output dtype (ULPs, the share exactly rounded)."""

import streamlit as st

from app import widgets
from perfmodel.reports.correctness import CHECKED, correctness_summary
from perfmodel.reports.displays import (NOT_MEASURED, correctness_display, correctness_summary_display,
                                        rounded_summary_texts)
from perfmodel.reports.report_data import SECTION_INTRO

sel = widgets.selection()
st.title("Correctness")
st.caption(SECTION_INTRO["correctness"])
scope = st.radio("Cases", ["this config", f"every {sel.dtype} config"], horizontal=True, key="correctness_scope")
corr = sel.for_config("correctness") if scope == "this config" else sel.for_dtype("correctness")
checked = corr[corr["status"].isin(CHECKED)]
cols = st.columns(4)
for col, (label, flag) in zip(cols, [("within budget", "within_budget"), ("plan allclose", "doc_allclose"),
                                     ("plan max error ≤ 0.06", "doc_max_err_ok")]):
    col.metric(label, f"{int((checked[flag] == True).sum())} of {len(checked)}")  # noqa: E712 (None-safe)
cols[3].metric("not checked (failed, unavailable)", len(corr) - len(checked))
for col, (label, text) in zip(st.columns(3), rounded_summary_texts(corr).items()):
    col.metric(label, text)
if len(checked) and not (checked["rounded_measured"] == True).any():  # noqa: E712
    st.info(f"Max ULPs, exactly rounded and RMS ULPs against the reference rounded to the output dtype: "
            f"{NOT_MEASURED} (this run was made before they were recorded).")
if (checked["within_budget"] == False).any():  # noqa: E712
    st.warning("A case outside its error budget is recorded as wrong and was not timed.")
st.subheader("Per case")
st.dataframe(correctness_display(corr), hide_index=True, width="stretch")
st.subheader("Per implementation")
st.dataframe(correctness_summary_display(correctness_summary(corr)), hide_index=True, width="stretch")
