"""Refuse to ship a model the deploy gate did not bless: `require_blessed.py VERDICT MODEL`.

CD runs this on the artifacts it downloaded from CI before building an image, with nothing but
the standard library (no project install on the deploy runner). It checks that the verdict says
blessed and that it judged exactly this model file (its sha256), so a verdict cannot vouch for
a different model that happened to sit beside it. Exit status 0 when both hold, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def problems(verdict_path: Path, model_path: Path) -> list[str]:
    """Why this model may not ship; empty when it may."""
    try:
        verdict = json.loads(verdict_path.read_text(encoding="utf-8"))
        actual = sha256_file(model_path)
    except (OSError, json.JSONDecodeError) as exc:
        return [f"cannot read the verdict or the model: {exc}"]
    found = []
    if verdict.get("blessed") is not True:
        failed = [c.get("name") for c in verdict.get("checks", []) if c.get("status") == "failed"]
        found.append(f"{verdict_path}: the gate did not bless this model (failed: {failed})")
    if verdict.get("model_sha256") != actual:
        found.append(
            f"{verdict_path}: judges model sha256 {verdict.get('model_sha256')}, "
            f"but {model_path} has sha256 {actual}"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("verdict", type=Path, help="the gate's verdict.json")
    parser.add_argument("model", type=Path, help="the model file the verdict must judge")
    args = parser.parse_args(argv)
    found = problems(args.verdict, args.model)
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    if not found:
        print(f"{args.model}: blessed by {args.verdict}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
