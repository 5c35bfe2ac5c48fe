"""What the interpreted sharding tests share (tests/test_merge.py, tests/test_devices.py): the collect they run,
the columns in which two collections of the same cases differ besides their measurements, and two readers."""

from __future__ import annotations

# one stage and one peer under the interpreter, two determinism calls: the smallest collect with every table
ARGS = ["collect", "--interpret", "--stages", "stage0_baseline", "--refs", "sdpa_cudnn", "--determinism", "2"]
# what differs between two collections of the same cases besides the run: when, and how long
CLOCK_COLUMNS = ["run_id", "finished", "wall_s", "predict_s", "predicted_at"]


def only_run(folder):
    """The one run folder a collect left in `folder`."""
    (run,) = [p for p in folder.iterdir() if p.is_dir()]
    return run


def comparable(run, table):
    """`table` of `run` without the clock columns, for comparing two collections case by case."""
    df = run.table(table)
    return df.drop(columns=[c for c in CLOCK_COLUMNS if c in df.columns]).reset_index(drop=True)
