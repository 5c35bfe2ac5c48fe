"""Compile the bundled runs' cases once and ship their instruction mixes in the package (perfmodel/bundled/mixes/).

    python scripts/ship_mixes.py

`perfmodel report`, `gates` and the dashboard then show the predictive model for the bundled runs without compiling,
and on a laptop without Triton at all (perfmodel/model/mix_cache.py reads the shipped mixes when the kernels' source
hash is the installed one). Run it after any change under kernels/ (tests/test_mix_cache.py fails until then) or a
Triton upgrade; it replaces the folder, so no mix of an older kernel stays behind.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    target = ROOT / "perfmodel" / "bundled" / "mixes"
    shutil.rmtree(target, ignore_errors=True)  # the shipped layer must not answer while it is being made
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PERFMODEL_CACHE_DIR"] = tmp
        from kernels.source import source_hash
        from perfmodel.model.mix_cache import FORMAT, triton_version, user_cache_dir
        from perfmodel.model.model_cases import model_table
        from perfmodel.runs import bundled_run_dirs, load_run
        from runstore.safe_io import atomic_write_json

        for path in bundled_run_dirs():
            table = model_table(load_run(path))
            ok = int((table["model_status"] == "ok").sum())
            print(f"{path.name}: {ok} of {len(table)} stage cases modelled")
            for r in table[table["model_status"] == "no_model"].to_dict("records"):
                print(f"  no model: {r['impl']} at {r['config_id']}: {r['model_reason']}")
        shutil.copytree(user_cache_dir(), target)
    atomic_write_json(target / "index.json", {"key": {"format": FORMAT}, "triton": [triton_version()],
                                              "kernels_source": source_hash()})
    n = len(list((target / "cases").glob("*.json")))
    size = sum(p.stat().st_size for p in target.rglob("*.json"))
    print(f"wrote {target.relative_to(ROOT)}: {n} cases, {size / 1e3:.0f} kB (Triton {triton_version()}, kernels "
          f"{source_hash()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
