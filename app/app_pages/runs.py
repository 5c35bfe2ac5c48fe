"""Runs: every loaded run, and two of them side by side with the case-by-case comparison at the sidebar's config
(or every config): a config one run lacks is said so, and runs of different GPU models get no verdict."""

import streamlit as st

from app import charts, data, tables, widgets
from perfmodel.reports.displays import comparison_display
from perfmodel.reports.report_data import SECTION_INTRO

sel = widgets.selection()
st.title("Runs")
dirs = data.run_dirs()
st.dataframe(tables.runs_display([data.run_info(d) for d in dirs]), hide_index=True, width="stretch")

left, right = st.columns(2)
base = left.selectbox("Baseline run", dirs, index=0, format_func=lambda d: data.run_info(d)["label"], key="cmp_base")
new = right.selectbox("Compared run", dirs, index=len(dirs) - 1, format_func=lambda d: data.run_info(d)["label"],
                      key="cmp_new")
cfg = sel.config_id
lacking = [data.run_info(d)["run_id"] for d in dict.fromkeys((base, new)) if cfg and cfg not in data.config_ids(d)]

for col, d in ((left, base), (right, new)):
    t, info = data.bundle(d), data.run_info(d)
    col.markdown(f"**{info['run_id']}** · {info['gpu']}")
    g = t["gates"]["status"].value_counts()
    col.caption(f"gates: {g.get('pass', 0)} pass, {g.get('fail', 0)} fail, {g.get('not_measured', 0)} not measured, "
                f"{g.get('report', 0)} to judge")
    if cfg and cfg not in data.config_ids(d):
        col.info(f"This run has no {cfg} (the sidebar's config); its configs: {', '.join(data.config_ids(d))}.")
    else:
        stages = t["stages"][t["stages"]["config_id"] == cfg] if cfg else t["stages"]
        col.dataframe(tables.run_stages_display(stages), hide_index=True, width="stretch")

st.subheader("Comparison")
st.caption(SECTION_INTRO["comparison"])
if new == base:
    st.info("Both sides show the same run: start the dashboard on two runs (`perfmodel dashboard RUN_A RUN_B`) "
            "to compare them.")
why = data.premise(new, base)
if not why.same_gpu:
    st.warning(why.gpu_line())
st.caption("Kernel code: " + why.kernels_line())
if why.methods_line():
    st.warning(why.methods_line())
scope = st.radio("Cases", ["the sidebar's config", "every config"], horizontal=True, key="cmp_scope")
cmp = data.comparison(new, base)
one = scope == "the sidebar's config" and cfg
shown = cmp[cmp["config_id"] == cfg] if one else cmp
common = [c for c in data.config_ids(base) if c in data.config_ids(new)]
missing = (f"{cfg} is not in run {' or '.join(lacking)}; the configs both runs hold: "
           f"{', '.join(common) or 'none'} (pick one in the sidebar, or every config)") if one and lacking else None
st.plotly_chart(charts.compare_figure(shown, config_id=cfg if one else None, why=missing), key="compare")
st.dataframe(comparison_display(shown), hide_index=True, width="stretch")  # the chart's cases, as a table
