"""params.yaml stays in the form DVC writes back, so `dvc exp run -S key=value` edits one line.

`dvc exp run -S` and `dvc exp apply` load params.yaml with a round-trip YAML parser and dump it
again. Anything that parser would reformat (a long folded line, `null`, an indented block list)
rewrites lines nobody changed and buries the experiment's one change in a noisy diff.
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
from dvc.utils.serialize import modify_yaml

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
    with modify_yaml(copy):
        pass
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
    with modify_yaml(copy) as data:
        node = data
        for key in leaf[:-1]:
            node = node[key]
        node[leaf[-1]] = changed_value(node[leaf[-1]])
    before = PARAMS.read_text(encoding="utf-8").splitlines()
    after = copy.read_text(encoding="utf-8").splitlines()
    changed = [line for line in difflib.ndiff(before, after) if line[:1] in "+-"]
    assert len(changed) == 2, "\n".join(changed)
