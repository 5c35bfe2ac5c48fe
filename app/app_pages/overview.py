"""Overview: the run, its GPU, the plan's gates and the headline verdicts."""

import streamlit as st

from app import charts, widgets
from perfmodel.report import SECTION_INTRO, gates_display

sel = widgets.selection()
info, t = sel.info, sel.tables

st.title("Predicted vs measured")
st.markdown(f"Run **{info['run_id']}** on **{info['gpu']}** · status {info['status']} · created {info['created']}"
            f" · suite {info['suite'] or '—'}")

gates = t["gates"]
counts = gates["status"].value_counts()
cols = st.columns(4)
for col, (label, key) in zip(cols, [("pass", "pass"), ("fail", "fail"), ("not measured", "not_measured"),
                                    ("to judge", "report")]):
    col.metric(label, int(counts.get(key, 0)))

st.subheader("Gates")
st.caption(SECTION_INTRO["gates"])
st.dataframe(widgets.status_style(gates_display(gates)), hide_index=True, width="stretch")

st.subheader("Headlines")
st.caption(SECTION_INTRO["headlines"])
for line in t["headlines"]:
    st.markdown(f"- {line}")

st.subheader(f"Stages at {sel.config_id}")
st.plotly_chart(charts.stages_figure(sel.for_config("stages"), sel.for_config("peers")), key="overview_stages")
