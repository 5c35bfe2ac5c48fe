"""The run store, a floor of its own: one folder per run, written by the sweep (collectors/) and read by perfmodel
and, through it, the dashboard. `writer` appends table parts and run.json atomically under the folder's lock,
`reader` opens a run and checks its tables, `layout` is the folder and run.json's format they both stand on,
`schema` the one place every table's columns and units are written down, `safe_io` the crash-safe writes and
locks. It imports nothing of the toolkit but kernels, and nothing beyond the standard library, pandas and pyarrow.
"""
