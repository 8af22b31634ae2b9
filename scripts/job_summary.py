"""The CI job summary: the evaluation metrics and the gate's verdict as Markdown on stdout.

CI appends this to `$GITHUB_STEP_SUMMARY` after `dvc repro`, whether the pipeline passed or not,
so a red build says at a glance which gate check failed and by how much. It reads the pipeline's
own files (located through params.yaml) and never fails the job itself: a missing file is
reported as missing, since the step that should have written it already failed the build.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from census_pipeline.config import load_params


def flatten(tree: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """Numeric leaves of a JSON document with dotted keys (lists are skipped: not a metric)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from flatten(value, f"{prefix}{key}.")
    elif isinstance(tree, int | float) and not isinstance(tree, bool):
        yield prefix.rstrip("."), float(tree)


def read(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def metrics_section(metrics: Any | None, path: Path) -> list[str]:
    if metrics is None:
        return [f"No metrics: `{path.name}` was not written (an earlier stage failed)."]
    lines = ["| metric | value |", "|---|---:|"]
    lines += [f"| {name} | {value:.4g} |" for name, value in flatten(metrics)]
    return lines


def verdict_section(verdict: Any | None, path: Path) -> list[str]:
    if verdict is None:
        return [f"No verdict: `{path.name}` was not written (the gate did not run)."]
    blessed = verdict.get("blessed") is True
    lines = [
        f"**{'Blessed' if blessed else 'NOT blessed'}**: model "
        f"`{str(verdict.get('model_sha256', '?'))[:12]}` "
        f"(version {verdict.get('model_version', '?')}).",
        "",
    ]
    if override := verdict.get("override"):
        lines += [f"Override recorded: {override.get('reason')}", ""]
    lines += ["| check | kind | value | bound | result | enforced | reason |"]
    lines += ["|---|---|---:|---|---|---|---|"]
    checks = sorted(verdict.get("checks", []), key=lambda c: c.get("status") != "failed")
    for check in checks:
        value = check.get("value")
        cells = [
            check.get("name"),
            check.get("kind"),
            "" if value is None else f"{value:.4g}",
            check.get("bound"),
            check.get("status"),
            "yes" if check.get("enforced") else "no",
            check.get("reason"),
        ]
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return lines


def cell(value: object) -> str:
    """A table cell: a `|` in a reason would otherwise split the row."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def summary(params_path: Path) -> str:
    paths = load_params(params_path).paths
    metrics_path, verdict_path = paths.metrics, paths.verdict
    verdict = read(verdict_path)
    title = "blessed" if verdict and verdict.get("blessed") is True else "not blessed"
    lines = [f"## Pipeline: model {title}", "", "### Gate verdict", ""]
    lines += verdict_section(verdict, verdict_path)
    lines += ["", "### Metrics on the official test set", ""]
    lines += metrics_section(read(metrics_path), metrics_path)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    sys.stdout.write(summary(args.params))
    return 0


if __name__ == "__main__":
    sys.exit(main())
