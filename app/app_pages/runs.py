"""Runs: every loaded run, and two of them side by side with the case-by-case comparison."""

import pandas as pd
import streamlit as st

from app import charts, data, widgets
from perfmodel.reporting import SECTION_INTRO, comparison_display

sel = widgets.selection()
st.title("Runs")
dirs = data.run_dirs()
infos = [data.run_info(d) for d in dirs]
st.dataframe(pd.DataFrame(infos)[["run_id", "gpu", "status", "created", "suite", "path"]], hide_index=True,
             width="stretch")

left, right = st.columns(2)
base = left.selectbox("Baseline run", dirs, index=0, format_func=lambda d: data.run_info(d)["label"], key="cmp_base")
new = right.selectbox("Compared run", dirs, index=len(dirs) - 1, format_func=lambda d: data.run_info(d)["label"],
                      key="cmp_new")

for col, d in ((left, base), (right, new)):
    t = data.bundle(d)
    info = data.run_info(d)
    col.markdown(f"**{info['run_id']}** · {info['gpu']}")
    g = t["gates"]["status"].value_counts()
    col.caption(f"gates: {g.get('pass', 0)} pass, {g.get('fail', 0)} fail, {g.get('not_measured', 0)} not measured")
    st_ = t["stages"]
    if sel.config_id:
        st_ = st_[st_["config_id"] == sel.config_id]
    col.dataframe(st_[["impl", "measured_tflops", "bound_tflops"]].round(1), hide_index=True, width="stretch",
                  column_config={"measured_tflops": "measured TFLOP/s", "bound_tflops": "bound TFLOP/s"})

st.subheader("Comparison")
st.caption(SECTION_INTRO["comparison"])
if new == base:
    st.info("Both sides show the same run: start the dashboard on two runs (`perfmodel dashboard RUN_A RUN_B`) "
            "to compare them.")
cmp = data.comparison(new, base)
shown = cmp[cmp["config_id"] == sel.config_id] if sel.config_id else cmp
st.plotly_chart(charts.compare_figure(shown), key="compare")
st.dataframe(comparison_display(cmp), hide_index=True, width="stretch")
