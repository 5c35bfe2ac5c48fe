"""What a run shows, as DataFrames and figures, for `perfmodel report` and the dashboard: predicted vs measured per
stage and peer (`analysis`), stalls, constraints and the roofline from the counters (`limits`), correctness
(`correctness`), the ablation (`ablation`), timing noise and two runs compared (`compare`), how times were measured
and the GPU's state (`timing_view`, `gpu_state`), what a collection tells whoever started it (`collect_summary`),
the figures (`figures`, `chart_kit`, `palette`), and the report itself (`reporting`: the data, display tables,
sections, Markdown and HTML).
"""
