"""Overview: the run, its GPU, the plan's gates and the headline verdicts."""

import streamlit as st

from app import charts, widgets
from perfmodel.reports.displays import gates_display
from perfmodel.reports.report_data import SECTION_INTRO

sel = widgets.selection()
info, t = sel.info, sel.tables

st.title("Predicted vs measured")
st.markdown(f"Run **{info['run_id']}** on **{info['gpu']}** · status {info['status']} · created {info['created']}"
            f" · suite {info['suite'] or '—'}")
if info.get("kernels_line"):  # a run of other kernel code than the installed kernels/, or of code not recorded
    (st.warning if info["kernels"] == "differs" else st.info)("Kernel code: " + info["kernels_line"])
if info.get("unmeasured"):  # an --interpret run: say so before any gate or chart does by its absence
    st.info(f"Nothing was timed: {info['unmeasured']}. The Correctness page shows what the run checked.")
if t.get("timing"):  # which method gave the times (GPU time by CUDA graph, or the host loop) and their ncu check
    st.caption(" ".join(t["timing"]))
top, bottom = st.container(), st.container()

# The chart goes out first (drawn below the gates): a browser that has not drawn a plotly chart yet spends a
# second or two loading plotly.js, and this way that starts while the tables are sent.
bottom.subheader(f"Stages at {sel.config_id}")
bottom.plotly_chart(charts.stages_figure(sel.for_config("stages"), sel.for_config("peers"),
                                         why=info.get("unmeasured") or None), key="overview_stages")

gates = t["gates"]
counts = gates["status"].value_counts()
cols = top.columns(4)
for col, (label, key) in zip(cols, [("pass", "pass"), ("fail", "fail"), ("not measured", "not_measured"),
                                    ("to judge", "report")]):
    col.metric(label, int(counts.get(key, 0)))

# the gates about implementations the run holds first; the others (a run of a user's kernel and stage 0, say)
# folded away, so the page does not open on twenty gates about stages the run never had
held = set(t["correctness"]["impl"]) | set(t["peers"]["impl"]) | set(
    t["stages"].loc[t["stages"]["status"] != "absent", "impl"])
mine = gates["impl"].isin(held) | gates["impl"].isna()
top.subheader("Gates")
top.caption(SECTION_INTRO["gates"])
if mine.any():
    top.dataframe(widgets.status_style(gates_display(gates[mine])), hide_index=True, width="stretch",
                  height=35 * (int(mine.sum()) + 1) + 3, column_config=widgets.GATE_COLUMNS)  # no inner scrolling
if (~mine).any():
    absent = sorted(set(gates.loc[~mine, "impl"]))
    with top.expander(f"{int((~mine).sum())} gates about implementations this run does not hold "
                      f"({', '.join(absent)})", expanded=False):
        st.dataframe(widgets.status_style(gates_display(gates[~mine])), hide_index=True, width="stretch",
                     column_config=widgets.GATE_COLUMNS)

top.subheader("Headlines")
top.caption(SECTION_INTRO["headlines"] + " Shown for the config chosen in the sidebar.")
lines = [line for line in t["headlines"] if sel.config_id and f"{sel.config_id}:" in line] or t["headlines"]
top.markdown("\n".join(f"- {line}" for line in lines))
