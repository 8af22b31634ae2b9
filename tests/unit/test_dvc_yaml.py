"""dvc.yaml is exact: each stage's deps are the code it imports and the artifacts it reads, its
params are the params.yaml keys it reads, and its outputs are artifacts that Params.paths names.

`dvc repro` reruns a stage only when a declared dependency changed, so a missing dependency means
a stale result nobody notices and an extra one means needless reruns. These checks recompute the
truth from the source (imports and `params.<section>.<key>` reads) and compare.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from census_pipeline.cli import app
from census_pipeline.config import Params, load_params

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = REPO_ROOT / "src" / "census_pipeline"
# The loader and the CLI layer are not steps: config.py reads every section to validate it,
# and cli.py only dispatches (a new command there must not rerun the whole pipeline).
NOT_A_READER = {PACKAGE / "config.py"}


def dvc_yaml() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    return loaded


def stages() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = dvc_yaml()["stages"]
    return found


def params() -> Params:
    return load_params(REPO_ROOT / "params.yaml")


def module_file(dotted: str) -> Path | None:
    if dotted == "census_pipeline":
        return PACKAGE / "__init__.py"
    relative = Path(*dotted.split(".")[1:])
    for candidate in (PACKAGE / relative.with_suffix(".py"), PACKAGE / relative / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def package_imports(source: Path) -> set[Path]:
    """census_pipeline modules a file imports, at any depth of the file (lazy imports count)."""
    found: set[Path | None] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("census_pipeline"):
            module = node.module or ""
            found.add(module_file(module))
            found.update(module_file(f"{module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(module_file(a.name) for a in node.names if a.name.startswith("census_"))
    return {path for path in found if path is not None}


def import_closure(step: str) -> set[Path]:
    start = module_file(f"census_pipeline.{step}")
    assert start is not None, f"stage {step!r} has no module census_pipeline.{step}"
    todo, seen = [start], set[Path]()
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(package_imports(path))
    return seen


def package_data(files: set[Path]) -> set[Path]:
    """Template folders the code loads with `PackageLoader("census_pipeline", "<folder>")`."""
    pattern = re.compile(r"PackageLoader\(\s*\"census_pipeline\",\s*\"([^\"]+)\"")
    found = set()
    for path in files:
        found |= {PACKAGE / name for name in pattern.findall(path.read_text(encoding="utf-8"))}
    return found


def params_read(files: set[Path]) -> set[str]:
    """Keys read as `params.<section>.<field>`; a section used as a whole is listed whole."""
    keys: set[str] = set()
    for path in files - NOT_A_READER:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _is_name(node.value, "params"):
                parent = parents.get(node)
                field = parent.attr if isinstance(parent, ast.Attribute) else None
                keys.add(_param_key(node.attr, field))
    wholes = {key for key in keys if "." not in key}
    kept = {k for k in keys if k.split(".")[0] not in wholes - {k}}
    return {k for k in kept if k.split(".")[0] != "paths"}


def _param_key(section: str, field: str | None) -> str:
    """`section.field` for a knob; just `section` when the code hands the section on (or calls
    one of its methods), since then any of its knobs may matter."""
    model = Params.model_fields[section].annotation if section in Params.model_fields else None
    fields = getattr(model, "model_fields", {})
    return f"{section}.{field}" if field in fields else section


def step_files(step: str) -> set[Path]:
    """The step's own import closure minus other steps' modules: importing a helper from
    another step does not run that step, so its knobs are not read."""
    others = {module_file(f"census_pipeline.{name}") for name in STAGE_NAMES if name != step}
    return import_closure(step) - others


def _is_name(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def declared_params(stage: dict[str, Any]) -> set[str]:
    entries = stage.get("params", [])
    assert all(isinstance(e, str) for e in entries), "params come from params.yaml only"
    return set(entries)


def outputs(stage: dict[str, Any]) -> list[str]:
    entries = [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries]


def known_artifacts(p: Params) -> set[Path]:
    """Every artifact path Params.paths names (fields, properties and the named families)."""
    paths = p.paths
    names = [
        n
        for n in dir(type(paths))
        if not n.startswith("_") and isinstance(getattr(type(paths), n, None), property)
    ]
    values = [getattr(paths, n) for n in names] + [value for _, value in paths]
    values += [paths.curve(name) for name in ("roc", "pr", "calibration")]
    values += [paths.quarantine(split) for split in ("train", "test")]
    return {value for value in values if isinstance(value, Path)}


STAGE_NAMES = list(stages())


def test_stages_follow_the_pipeline_order() -> None:
    order = ["ingest", "validate", "clean", "tune", "train", "profile", "evaluate", "audit"]
    order += ["tradeoff", "gate", "card"]
    assert [name for name in order if name in STAGE_NAMES] == STAGE_NAMES
    assert STAGE_NAMES[:3] == ["ingest", "validate", "clean"]


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_stage_runs_its_cli_command_on_this_repos_params(name: str) -> None:
    # The project's own environment, by a path relative to the repository: no PATH needed.
    assert stages()[name]["cmd"] == f".venv/bin/census-pipeline {name} --params params.yaml"
    assert name in typer.main.get_command(app).commands  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_code_deps_are_exactly_the_modules_the_step_imports(name: str) -> None:
    declared = {d for d in stages()[name]["deps"] if d.startswith("src/")}
    closure = import_closure(name)
    expected = {str(p.relative_to(REPO_ROOT)) for p in closure | package_data(closure)}
    assert declared == expected, {
        "missing": sorted(expected - declared),
        "extra": sorted(declared - expected),
    }


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_params_are_exactly_the_keys_the_step_reads(name: str) -> None:
    read = params_read(step_files(name))
    declared = declared_params(stages()[name])
    assert declared == read, {"missing": sorted(read - declared), "extra": sorted(declared - read)}
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    for key in declared:
        node = raw
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{key} is not in params.yaml"
            node = node[part]


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_outputs_are_artifacts_that_params_paths_names(name: str) -> None:
    known = known_artifacts(params())
    for out in outputs(stages()[name]):
        assert (REPO_ROOT / out).resolve() in known, f"{name}: {out} is not named by Params.paths"


def test_no_two_stages_write_the_same_path_or_nest_outputs() -> None:
    every = [(name, Path(out)) for name in STAGE_NAMES for out in outputs(stages()[name])]
    for i, (first, a) in enumerate(every):
        for second, b in every[i + 1 :]:
            assert not (a == b or a in b.parents or b in a.parents), (first, a, second, b)


@pytest.mark.parametrize("name", STAGE_NAMES[1:])
def test_data_deps_are_outputs_of_earlier_stages(name: str) -> None:
    earlier = STAGE_NAMES[: STAGE_NAMES.index(name)]
    produced = {Path(out) for stage in earlier for out in outputs(stages()[stage])}
    baseline = Path(params().paths.baseline_dir.relative_to(REPO_ROOT))
    data_deps = [Path(d) for d in stages()[name]["deps"] if not d.startswith("src/")]
    assert data_deps, f"{name} reads no artifact of an earlier stage"
    for dep in data_deps:
        in_baseline = dep == baseline or baseline in dep.parents
        assert in_baseline or any(dep == p or p in dep.parents for p in produced), dep


def uncached_outputs(stage: dict[str, Any]) -> set[str]:
    """Outputs declared `cache: false`: small files committed to git on purpose."""
    return {
        name
        for entry in stage.get("outs", [])
        if isinstance(entry, dict)
        for name, options in entry.items()
        if options.get("cache") is False
    }


def test_outputs_live_where_git_does_not_track_them() -> None:
    ignored = (REPO_ROOT / ".gitignore").read_text(encoding="utf-8").split()
    roots = {line.strip("/") for line in ignored if line.startswith("/")}
    for name in STAGE_NAMES:
        committed = uncached_outputs(stages()[name])
        for out in outputs(stages()[name]):
            if out in committed:
                assert Path(out).parts[0] not in roots, f"{out} is committed but git-ignored"
            else:
                assert Path(out).parts[0] in roots, f"{out} would be committed to git"


def test_plots_section_draws_files_that_stages_produce() -> None:
    plots = dvc_yaml().get("plots", [])
    produced = {out for name in STAGE_NAMES for out in outputs(stages()[name])}
    assert len(plots) >= 4
    for plot in plots:
        ((_, spec),) = plot.items()
        (file,) = spec["y"]
        assert file in produced and spec.get("x") and spec.get("template")


def test_default_remote_is_a_local_directory_inside_the_ignored_tree() -> None:
    config = (REPO_ROOT / ".dvc" / "config").read_text(encoding="utf-8")
    assert "remote = local" in config
    assert "url = ../dvc-storage" in config  # relative to .dvc/: <repo>/dvc-storage
    assert "/dvc-storage/" in (REPO_ROOT / ".gitignore").read_text(encoding="utf-8")
    assert "/dvc-storage/" in (REPO_ROOT / ".dvcignore").read_text(encoding="utf-8")
