"""Stages: measured TFLOP/s against the Einstein bands, each stage's bound, the predictive model and the roofline."""

import streamlit as st

from app import charts, data, widgets
from perfmodel.model.model_cases import NO_MODEL_FOR_PEERS, with_model
from perfmodel.reports.displays import regressions_display, stages_display
from perfmodel.reports.gpu_state import throttled_line
from perfmodel.reports.report_data import SECTION_INTRO

sel = widgets.selection()
st.title("Stages")
st.caption(SECTION_INTRO["stages"])
# the model reads each stage's compiled instruction mix (the disk cache, the package's shipped mixes, else it
# compiles the stage: seconds each, once; the dashboard's warm-up thread does it after the runs' tables): behind a
# checkbox, on by default, so a slow machine can leave it out
model = None
if st.checkbox("Predictive model beside the bound", value=True, key="stages_model",
               help="perfmodel/model/predictive.py: each stage's time from its compiled sm_90 code, never from a "
                    "timing; the first time per kernel it compiles the stage (seconds)."):
    model, err = data.safe(data.model_cases, sel.run_dir)
    if err:
        st.error(err)
stages = with_model(sel.for_config("stages"), model)
why = sel.info.get("unmeasured") or None  # an --interpret run: the charts say so
st.plotly_chart(charts.stages_figure(stages, sel.for_config("peers"), why=why), key="stages")
st.plotly_chart(charts.terms_figure(stages, why=why), key="terms")
if model is not None:
    st.plotly_chart(charts.model_terms_figure(stages), key="model_terms")
    st.caption("err vs model is the model's time / the measured time − 1 (as `perfmodel model score` gives it); "
               "a stage without a prediction says why. " + NO_MODEL_FOR_PEERS)
if not stages.empty:
    st.caption(f"Bound GPU: {stages['bound_gpu'].iloc[0]}")
throttled = throttled_line(stages)
if throttled:  # the table's `throttled` column names each case's reasons
    st.warning(throttled)
st.dataframe(stages_display(stages[stages["status"] != "absent"]), hide_index=True, width="stretch")
reg = sel.for_config("regressions")
if not reg.empty:
    st.warning("A stage is slower than the stage before it beyond noise (the check the plan forgot); the ablation "
               "of the technique it adds is beside it.")
    st.dataframe(regressions_display(reg), hide_index=True, width="stretch")
