"""Refuse to ship a model the gate did not bless: `require_blessed.py VERDICT MODEL METADATA`.

CD runs this on the artifacts it downloaded from CI before building an image, with nothing but
the standard library (no project install on the deploy runner). It checks that the verdict says
blessed, that it judged exactly this model file (its `model_sha256`) and exactly this metadata
file (the sha256 the gate recorded as `inputs.model_metadata`), so a verdict cannot vouch for a
different model, or for metadata edited after the gate (a changed threshold, say). Exit status 0
when all hold, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

# The key under which the gate records the sha256 of the metadata file it judged.
METADATA_INPUT = "model_metadata"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def problems(verdict_path: Path, model_path: Path, metadata_path: Path) -> list[str]:
    """Why this model may not ship; empty when it may."""
    try:
        verdict = json.loads(verdict_path.read_text(encoding="utf-8"))
        actual = sha256_file(model_path)
        actual_metadata = sha256_file(metadata_path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"cannot read the verdict, the model or its metadata: {exc}"]
    if not isinstance(verdict, dict):
        return [f"{verdict_path}: not a verdict (a JSON object is expected)"]
    found = []
    if verdict.get("blessed") is not True:
        failed = [c.get("name") for c in verdict.get("checks", []) if c.get("status") == "failed"]
        found.append(f"{verdict_path}: the gate did not bless this model (failed: {failed})")
    if verdict.get("model_sha256") != actual:
        found.append(
            f"{verdict_path}: judges model sha256 {verdict.get('model_sha256')}, "
            f"but {model_path} has sha256 {actual}"
        )
    inputs = verdict.get("inputs")
    judged = inputs.get(METADATA_INPUT) if isinstance(inputs, dict) else None
    if judged is None:
        found.append(
            f"{verdict_path}: records no inputs.{METADATA_INPUT} digest, so it cannot vouch "
            f"for {metadata_path}: rerun `census-pipeline gate`"
        )
    elif judged != actual_metadata:
        found.append(
            f"{verdict_path}: judged metadata sha256 {judged}, but {metadata_path} has sha256 "
            f"{actual_metadata} (changed after the gate)"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("verdict", type=Path, help="the gate's verdict.json")
    parser.add_argument("model", type=Path, help="the model file the verdict must judge")
    parser.add_argument("metadata", type=Path, help="the model.json the verdict must judge")
    args = parser.parse_args(argv)
    found = problems(args.verdict, args.model, args.metadata)
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    if not found:
        print(f"{args.model} and {args.metadata}: blessed by {args.verdict}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
