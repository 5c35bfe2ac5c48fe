"""`perfmodel collect`, the sweep: what it is asked (`options`), whether it runs here or one worker per GPU
(`collect`, `local`, `devices`), the checks before it measures (`preflight`, `env`), the phases in their order
(`predictions_phase`, `gpu_cases` or `interpret_cases`, `ablation` and `ablation_phase`, `timeline_phase`,
`census_phase`, `ncu_phase` with its `worker` process), the rows they share (`case_rows`), its progress line (`progress`), and
shards planned (`shard`) and merged (`merge`). It drives the measurement packages and writes through runstore.
"""
