"""The first-principles model of a stage's time and its engine, beside each other: the speed-of-light bound
(`bound`), the predictive model v3 (`predictive`) with the instruction mix of each compiled stage it reads
(`instruction_mix` from the PTX, `sass_mix` from the SASS), the in-order replay that prices a loop's critical path
(`critical_path`), the mixes kept on disk (`mix_cache`), the GPU figures a run is predicted with (`run_gpu`), the
model beside each measured stage (`model_cases`), and how well each registered predictor does against measured
times (`predictors`, `score_sources`, `scoring`: `perfmodel model score`).
"""
