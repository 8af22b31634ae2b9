"""params.yaml stays in the form DVC writes back, so `dvc exp run -S key=value` edits one line.

`dvc exp run -S` loads params.yaml with a round-trip YAML parser, applies the override through
Hydra (`dvc.utils.hydra.apply_overrides`, which replaces every list by a plain one) and dumps it
again. Anything that would reformat (a folded line wider than 80 columns, `null`, a flow-style
list `[a, b]`, a comment or blank line right after a list) rewrites lines nobody changed and
buries the experiment's one change in a noisy diff. Keep lists in block style:

    exclude_features:
    - fnlgt
"""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO_ROOT
from dvc.utils.hydra import apply_overrides

PARAMS = REPO_ROOT / "params.yaml"


def scalar_leaves(tree: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Dotted paths of every number and boolean held directly by a mapping: the knobs an
    experiment sets (`-S train.lightgbm.learning_rate=0.1`); prose values are not experimented
    with."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from scalar_leaves(value, (*prefix, str(key)))
    elif isinstance(tree, bool | int | float):
        yield prefix


def changed_value(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    return value + 1


def test_a_round_trip_through_dvc_changes_nothing(tmp_path: Path) -> None:
    copy = Path(shutil.copy(PARAMS, tmp_path / "params.yaml"))
    seed = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))["seed"]
    apply_overrides(copy, [f"seed={seed}"])  # what `dvc exp run -S seed=<same>` does
    diff = difflib.unified_diff(
        PARAMS.read_text(encoding="utf-8").splitlines(),
        copy.read_text(encoding="utf-8").splitlines(),
        lineterm="",
    )
    assert not list(diff), "reformat params.yaml as DVC writes it (see the diff)"


LEAVES = list(scalar_leaves(yaml.safe_load(PARAMS.read_text(encoding="utf-8"))))


@pytest.mark.parametrize("leaf", LEAVES, ids=".".join)
def test_setting_one_value_changes_one_line(tmp_path: Path, leaf: tuple[str, ...]) -> None:
    copy = Path(shutil.copy(PARAMS, tmp_path / "params.yaml"))
    node = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))
    for key in leaf:
        node = node[key]
    value = changed_value(node)
    apply_overrides(
        copy, [f"{'.'.join(leaf)}={str(value).lower() if isinstance(value, bool) else value}"]
    )
    before = PARAMS.read_text(encoding="utf-8").splitlines()
    after = copy.read_text(encoding="utf-8").splitlines()
    changed = [line for line in difflib.ndiff(before, after) if line[:1] in "+-"]
    assert len(changed) == 2, "\n".join(changed)
