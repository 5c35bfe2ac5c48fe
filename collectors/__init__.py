"""Measurement and the sweep: the kernels measured on a GPU (or checked under Triton's interpreter) and written to
the run store (runstore/). Imports kernels and runstore, never perfmodel or app.

The measurement packages each own one way of looking at a kernel and never import the sweep: `timing` (CUDA-event
and CUDA-graph times, their bootstrap intervals, the correctness check before a time, the GPU's clocks while it
runs), `ncu` (Nsight Compute: the session, its report read and parsed into counters and stall reasons), `census`
(the sm_90 compile of a stage read without a GPU: PTX and SASS counts, loops, resources), `ceilings` (this GPU's
peaks and micro-benchmarks) and `timeline` (Proton's intra-kernel timelines). `sweep` is `perfmodel collect`: the
order of the phases over every (implementation, config), sharding and one worker per GPU, and the merge of shards.
"""
