"""Nsight Compute, in nsight-python's steps: the one mapping from short metric names to ncu's (`metrics`), the
profiling session over the worker process (`profile`), the .ncu-rep read exactly through NVIDIA's ncu_report
(`read`) or ncu's CSV exports parsed (`parse`) into the ncu_metrics and stalls rows, and any report turned into a
run folder (`import_profile`, `perfmodel import`).
"""
