"""Refuse to ship a model the gate did not bless: `require_blessed.py VERDICT MODEL METADATA`.

CD runs this on the artifacts it downloaded from CI before building an image. It applies the
very check the service and batch scoring apply (`census_pipeline.trust`, from the core install:
`pip install .`, no service or pipeline extras): the model matches its metadata and is a binary
classifier, the verdict judged exactly this model and metadata, its `blessed` is what its own
checks imply, and, when CENSUS_VERIFY_KEY or CENSUS_VERIFY_KEY_FILE is set, it carries a valid
signature by that key. Exit status 0 when all hold, 1 otherwise, with the reason on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def check(verdict_path: Path, model_path: Path, metadata_path: Path) -> str:
    """What vouches for the model (one line); raises `PipelineError` when it may not ship."""
    from census_pipeline.trust import UNSIGNED_WARNING, load_trusted_files

    trusted = load_trusted_files(model_path, metadata_path, verdict_path)
    trusted.predictor.close()
    signature = trusted.verdict.signature if trusted.verdict else None
    if trusted.signed and signature is not None:
        return f"blessed by {verdict_path}, signed by key {signature.key_id}"
    return f"blessed by {verdict_path}; warning: {UNSIGNED_WARNING}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("verdict", type=Path, help="the gate's verdict.json")
    parser.add_argument("model", type=Path, help="the model file the verdict must judge")
    parser.add_argument("metadata", type=Path, help="the model.json the verdict must judge")
    args = parser.parse_args(argv)
    try:
        from census_pipeline.errors import PipelineError
    except ImportError:
        print("error: census_pipeline is not installed: run `pip install .`", file=sys.stderr)
        return 1
    try:
        vouched = check(args.verdict, args.model, args.metadata)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.model} and {args.metadata}: {vouched}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
