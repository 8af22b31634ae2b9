"""Run every benchmark in this folder, one after the other, with its default settings.

Each script prints its own medians and ratios; this runner only sequences them (they must not
overlap: the machine has two cores and every figure is a same-run ratio) and reports which failed.
Steps that need the pipeline's outputs (model, predictions) expect `make pipeline` to have run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = (
    "bench_data.py",
    "bench_train.py",
    "bench_predict.py",
    "bench_mitigation.py",
    "bench_slices.py",
    "bench_trust.py",
    "bench_dvc.py",
    "bench_api.py",
    "bench_oip.py",
    "bench_batch.py",
    "bench_setup.py",
)


def main() -> int:
    failed = []
    for name in ORDER:
        print(f"\n=== {name}", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)], check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
