"""This GPU's ceilings, measured in the same run as the kernels (the `ceilings` table): the peaks (`ceilings`:
cuBLAS fp16/bf16, an HBM copy, an exp2 stream, a launch) and the micro-benchmarks of the units the stages use
(`microbench`: wgmma latency and rate per tile, exp2/FMA/shuffle latency, shared memory, barriers, TMA), which the
predictive model prices latencies with. `python -m collectors.ceilings.ceilings` prints them.
"""
