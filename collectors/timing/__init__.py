"""Timing one call of an implementation: the correctness check that comes first (`bench`), the time of one call by
CUDA-graph replay or do_bench's host loop over rotated inputs (`measure`), the bootstrap interval of its median
(`stats`), the GPU's clocks, power and throttle reasons while it runs (`gpu_state`), the GPU memory a case needs
(`memory`) and how a case's failure reads in one line (`failures`). Shared by `perfmodel bench` and the sweep.
"""
