"""Inside the kernel: a Proton timeline of each Gluon stage at the sidebar's config, as a Gantt chart of a few work
items of one SM, and the derived figures of the stages side by side (perfmodel/reports/timeline_view.py)."""

import streamlit as st

from app import charts, data, widgets
from perfmodel.reports import timeline_view as tv
from perfmodel.reports.report_data import SECTION_INTRO

sel = widgets.selection()
st.title("Inside the kernel")
st.caption(SECTION_INTRO["timeline"])
tl = sel.tables["timeline"]
if tl is None:
    st.info(tv.NO_TIMELINE)
    st.stop()
cases = tl.cases[tl.cases["config_id"] == sel.config_id]
if cases.empty:
    st.info(f"No timeline was recorded at {sel.config_id}; this run has timelines at "
            f"{', '.join(dict.fromkeys(tl.cases['config_id']))} (pick one in the sidebar).")
    st.stop()
ok = cases[cases["status"] == "ok"]
st.subheader("One SM, a few work items")
if ok.empty:
    st.warning("No timeline of this config is the bare kernel's: each was refused or not measured (see the table "
               "below).")
else:
    impls = list(dict.fromkeys(ok["impl"]))
    cols = st.columns(3)
    impl = cols[0].selectbox("Implementation", impls, format_func=tv.stage_label, key="timeline_impl")
    rows = data.timeline_rows(sel.run_dir, impl, sel.config_id)
    sms = sorted(int(s) for s in rows["sm"].unique())
    sm = cols[1].selectbox("SM (those the run kept)", sms, key="timeline_sm") if sms else None
    items = cols[2].slider("Work items", 1, 8, tv.GANTT_ITEMS, key="timeline_items")
    clock = tl.clock_mhz.get((impl, sel.config_id))
    gantt = tv.gantt_rows(rows, sm=sm, items=items, clock_mhz=clock)
    st.plotly_chart(charts.gantt_figure(gantt, impl, sel.config_id, tv.clock_note(clock)), key="timeline_gantt")
st.subheader("Stages side by side")
st.plotly_chart(charts.timeline_shares_figure(tl.figures, tl.cases, sel.config_id), key="timeline_shares")
st.plotly_chart(charts.timeline_phases_figure(tl.figures, tl.cases, sel.config_id), key="timeline_phases")
st.plotly_chart(charts.timeline_overhead_figure(tl.cases, sel.config_id), key="timeline_overhead")
st.dataframe(tv.side_by_side(tl.figures, sel.config_id), hide_index=True, width="stretch")
st.subheader("Each timeline's verdict and the instrumentation's cost")
st.dataframe(tv.cases_display(cases), hide_index=True, width="stretch")
