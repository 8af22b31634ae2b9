"""What the shared trust check adds to loading a model, against the bare load, in the same run.

- baseline: `Predictor.load` (digest check, shape checks, LightGBM parse, fast-path set-up);
- `load_trusted_model` without a verify key (adds the verdict: strict parse, identities,
  consistency);
- `load_trusted_model` with a verify key, on a copy of the folder whose verdict is signed with a
  key made for the run (adds canonical JSON and an Ed25519 verification).

Each figure is the median of `--runs` in-process loads (imports excluded: paid once by any of
them). The folder must hold the gate's real output (`make pipeline`, or any gated project):

    python benchmarks/bench_trust_load.py --model-dir models [--runs 30]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from census_pipeline.files import json_bytes
from census_pipeline.gate import signed
from census_pipeline.predict import Predictor
from census_pipeline.signing import VerifyKeys
from census_pipeline.trust import load_trusted_model
from census_pipeline.verdict import Verdict


def median_ms(load: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        loaded = load()
        times.append(time.perf_counter() - started)
        close = getattr(getattr(loaded, "predictor", loaded), "close", None)
        if close is not None:
            close()
    return statistics.median(times) * 1000


def signed_copy(model_dir: Path, target: Path) -> VerifyKeys:
    """`model_dir` copied to `target` with its verdict signed by a fresh key; that key's keys."""
    shutil.copytree(model_dir, target)
    key = Ed25519PrivateKey.generate()
    verdict = Verdict.model_validate_json((target / "verdict.json").read_bytes())
    (target / "verdict.json").write_bytes(json_bytes(signed(verdict, key).model_dump(mode="json")))
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return VerifyKeys.from_pem(pem, "benchmark key")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        keys = signed_copy(args.model_dir, Path(tmp) / "signed")
        # One untimed round of each, so no figure includes first-call costs.
        for load in (
            lambda: Predictor.load(args.model_dir),
            lambda: load_trusted_model(args.model_dir),
            lambda: load_trusted_model(Path(tmp) / "signed", verify_keys=keys),
        ):
            median_ms(load, 1)
        bare = median_ms(lambda: Predictor.load(args.model_dir), args.runs)
        unsigned = median_ms(lambda: load_trusted_model(args.model_dir), args.runs)
        verified = median_ms(
            lambda: load_trusted_model(Path(tmp) / "signed", verify_keys=keys), args.runs
        )
    print(f"| load | median of {args.runs} | ratio to the bare load |")
    print("|---|---|---|")
    print(f"| baseline: `Predictor.load` | {bare:.1f} ms | 1.00x |")
    print(f"| trust check, no key | {unsigned:.1f} ms | {unsigned / bare:.2f}x |")
    print(f"| trust check, signed verdict verified | {verified:.1f} ms | {verified / bare:.2f}x |")


if __name__ == "__main__":
    main()
