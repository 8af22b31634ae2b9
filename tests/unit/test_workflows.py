"""The GitHub Actions workflows and the small scripts they run.

The workflow files are validated against GitHub's published workflow schema (vendored by
check-jsonschema, so this works offline), then checked for what this project promises: CI runs
the same `make` targets as a developer, then the pipeline with its gate, and reports; CD runs
only after a green CI on main, deploys only that run's blessed model, and takes every secret from
the repository's secrets, each one documented.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from model_folders import check, write_folder

from census_pipeline.config import Params, load_params
from census_pipeline.files import json_bytes
from census_pipeline.gate import signed
from census_pipeline.publish import CARD, METADATA, MODEL, SEAL, VERDICT
from census_pipeline.signing import keygen, signing_key_from_env
from census_pipeline.verdict import Verdict

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
SCRIPTS = REPO_ROOT / "scripts"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def workflow(name: str) -> dict[str, Any]:
    loaded: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as the boolean True.
    loaded["on"] = loaded.pop(True, loaded.get("on"))
    return loaded


def steps(flow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in flow["jobs"].values() for step in job["steps"]]


def run_lines(flow: dict[str, Any]) -> list[str]:
    return [line.strip() for step in steps(flow) for line in step.get("run", "").splitlines()]


def uses(flow: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in steps(flow) if step.get("uses", "").startswith(action + "@")]


def test_workflows_validate_against_githubs_schema() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["cd.yml", "ci.yml"]
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_would_catch_a_broken_workflow(tmp_path: Path) -> None:
    broken = workflow("ci.yml")
    broken["jobs"]["build"]["runs-on"] = None
    del broken["jobs"]["build"]["steps"]
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        check=False,
    )
    assert result.returncode != 0


def test_every_action_is_pinned_to_a_version() -> None:
    for name in ("ci.yml", "cd.yml"):
        for step in steps(workflow(name)):
            if "uses" in step:
                assert re.fullmatch(r"[\w-]+/[\w-]+@v\d+", step["uses"]), step["uses"]


# --- CI ---------------------------------------------------------------------------------------


def test_ci_runs_on_every_push_and_pull_request() -> None:
    triggers = workflow("ci.yml")["on"]
    assert set(triggers) == {"push", "pull_request"}
    assert not any(triggers.values()), "no branch filter: every push and PR is checked"


def test_ci_uses_the_python_pin_and_caches_uvs_wheels_by_the_lock() -> None:
    (setup,) = uses(workflow("ci.yml"), "actions/setup-python")
    assert setup["with"]["python-version-file"] == ".python-version"
    assert "cache" not in setup["with"]  # `make setup` installs with uv, not pip
    (uv,) = uses(workflow("ci.yml"), "astral-sh/setup-uv")
    assert uv["with"]["enable-cache"] is True
    assert uv["with"]["cache-dependency-glob"] == "uv.lock"
    assert (REPO_ROOT / "uv.lock").is_file()


def test_ci_tests_like_a_developer_then_runs_the_gated_pipeline() -> None:
    lines = run_lines(workflow("ci.yml"))
    assert "make test" in lines and "make pipeline" in lines
    assert lines.index("make test") < lines.index("make pipeline")
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    test_target = re.search(r"^test:(.*)$", makefile, re.MULTILINE)
    assert test_target and test_target.group(1).split() == ["setup", "lint", "typecheck", "pytest"]
    pipeline_recipe = makefile.split("\npipeline:", 1)[1].split("\n\n", 1)[0]
    assert "dvc repro" in pipeline_recipe
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert stages["gate"]["cmd"].startswith(".venv/bin/census-pipeline gate")


def test_ci_reports_even_when_the_gate_fails() -> None:
    flow = workflow("ci.yml")
    (summary,) = [s for s in steps(flow) if "GITHUB_STEP_SUMMARY" in s.get("run", "")]
    assert summary["if"] == "${{ !cancelled() }}"
    assert "scripts/job_summary.py" in summary["run"]
    uploads = {s["with"]["name"]: s for s in uses(flow, "actions/upload-artifact")}
    assert uploads["pipeline-outputs"]["if"] == "${{ !cancelled() }}"
    # The deployable artifact is uploaded only when every step passed, the gate included.
    assert "if" not in uploads["blessed-model"]
    shipped = set(uploads["blessed-model"]["with"]["path"].split())
    paths = load_params(REPO_ROOT / "params.yaml").paths
    needed = {paths.serving_dir / name for name in (MODEL, METADATA, VERDICT, CARD, SEAL)}
    assert shipped == {str(p.relative_to(REPO_ROOT)) for p in needed}
    # Published (checked as the service checks) after the gated pipeline, before the upload.
    runs = [s.get("run", "") for s in steps(flow)]
    assert runs.index("make publish") > runs.index("make pipeline")


# --- CD ---------------------------------------------------------------------------------------


def test_cd_runs_only_after_ci_succeeded_on_main() -> None:
    flow = workflow("cd.yml")
    trigger = flow["on"]["workflow_run"]
    assert trigger == {"workflows": [workflow("ci.yml")["name"]], "types": ["completed"]} | {
        "branches": ["main"]
    }
    (job,) = flow["jobs"].values()
    condition = " ".join(job["if"].split())
    assert "github.event.workflow_run.conclusion == 'success'" in condition
    assert "github.event.workflow_run.head_branch == 'main'" in condition
    assert "github.event.workflow_run.event == 'push'" in condition


def test_cd_deploys_the_blessed_model_of_that_very_ci_run() -> None:
    flow = workflow("cd.yml")
    (checkout,) = uses(flow, "actions/checkout")
    assert checkout["with"]["ref"] == "${{ github.event.workflow_run.head_sha }}"
    (download,) = uses(flow, "actions/download-artifact")
    assert download["with"]["name"] == "blessed-model"
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    lines = run_lines(flow)
    check = next(i for i, line in enumerate(lines) if "require_blessed.py" in line)
    assert lines[check].split()[-3:] == [
        "serving/verdict.json",
        "serving/model.txt",
        "serving/model.json",
    ]
    build = next(i for i, line in enumerate(lines) if line.startswith("docker build"))
    assert check < build
    # The check is the core package's trust check, installed before it runs.
    install = next(i for i, line in enumerate(lines) if "pip install" in line)
    assert install < check and lines[install].split()[-1] == "."


def test_cd_releases_on_heroku_through_its_container_registry() -> None:
    text = (WORKFLOWS / "cd.yml").read_text(encoding="utf-8")
    assert "registry.heroku.com" in text
    assert "https://api.heroku.com/apps/${HEROKU_APP_NAME}/formation" in text


def test_secrets_come_from_the_secret_store_and_are_documented() -> None:
    process_doc = (REPO_ROOT / "docs" / "process.md").read_text(encoding="utf-8")
    for name in ("ci.yml", "cd.yml"):
        text = (WORKFLOWS / name).read_text(encoding="utf-8")
        for secret in set(re.findall(r"secrets\.([A-Z_]+)", text)):
            assert f"`{secret}`" in process_doc, f"{secret} is not documented in docs/process.md"
        # Nothing that looks like a credential is written into a workflow.
        assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text)
        assert not re.search(r"gh[pousr]_[A-Za-z0-9]{20,}", text)


# --- the scripts the workflows run -------------------------------------------------------------


METADATA_BYTES = b'{"threshold": 0.41}'


def _verdict(blessed: bool, model_sha256: str) -> dict[str, Any]:
    """A verdict for the job summary (which reads it loosely, like a person would)."""
    return {
        "blessed": blessed,
        "model_version": "0.1.0",
        "model_sha256": model_sha256,
        "override": None,
        "checks": [
            {
                "name": "roc_auc",
                "kind": "overall",
                "value": 0.93,
                "bound": ">= 0.9",
                "status": "passed",
                "enforced": True,
                "reason": "ROC AUC 0.93 is at least 0.9.",
            },
            {
                "name": "fpr_parity sex",
                "kind": "fairness",
                "value": 0.3,
                "bound": "in [0.8, 1.25]",
                "status": "failed",
                "enforced": blessed,
                "reason": "Female | Male FPR ratio 0.3 is outside [0.8, 1.25].",
            },
        ],
        "inputs": {"model_metadata": hashlib.sha256(METADATA_BYTES).hexdigest()},
    }


def _require_blessed(*argv: str) -> subprocess.CompletedProcess[str]:
    """The script as CD runs it: its own process, isolated from this one's path and settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CENSUS_VERIFY", "CENSUS_S"))}
    script = str(SCRIPTS / "require_blessed.py")
    return subprocess.run(
        [sys.executable, "-I", script, *argv], capture_output=True, text=True, check=False, env=env
    )


def _in_process(folder: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The script's main() in this process: the same code, without paying for an import."""
    spec = importlib.util.spec_from_file_location("require_blessed", SCRIPTS / "require_blessed.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code: int = module.main(_files(folder))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _files(folder: Path) -> list[str]:
    return [str(folder / name) for name in ("verdict.json", "model.txt", "model.json")]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CENSUS_VERIFY_KEY", "CENSUS_VERIFY_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    write_folder(tmp_path / "models")
    return tmp_path / "models"


def _edit_verdict(folder: Path, **changes: Any) -> None:
    verdict = json.loads((folder / "verdict.json").read_text(encoding="utf-8"))
    (folder / "verdict.json").write_text(json.dumps({**verdict, **changes}), encoding="utf-8")


def test_require_blessed_passes_a_blessed_verdict_for_this_model(folder: Path) -> None:
    result = _require_blessed(*_files(folder))
    assert result.returncode == 0, result.stderr
    assert "blessed by" in result.stdout and "no verify key configured" in result.stdout


def test_require_blessed_refuses_a_forged_blessing(folder: Path) -> None:
    verdict = json.loads((folder / "verdict.json").read_text(encoding="utf-8"))
    _edit_verdict(folder, checks=[*verdict["checks"], check("fairness:fpr:sex", False)])
    result = _require_blessed(*_files(folder))
    assert result.returncode == 1
    assert "blessed=True although enforced checks failed (fairness:fpr:sex)" in result.stderr


def test_require_blessed_refuses_a_blessing_that_is_not_a_boolean(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit_verdict(folder, blessed="yes")
    code, output = _in_process(folder, capsys)
    assert code == 1 and "blessed: Input should be a valid boolean" in output


def test_require_blessed_refuses_an_unblessed_model(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    verdict = json.loads((folder / "verdict.json").read_text(encoding="utf-8"))
    _edit_verdict(folder, blessed=False, checks=[*verdict["checks"], check("slice:f1", False)])
    code, output = _in_process(folder, capsys)
    assert code == 1 and "did not bless" in output and "slice:f1" in output


def test_require_blessed_refuses_a_verdict_about_another_model(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit_verdict(folder, model_sha256="0" * 64)
    code, output = _in_process(folder, capsys)
    assert code == 1 and "another model" in output


def test_require_blessed_refuses_metadata_edited_after_the_gate(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit_verdict(folder, inputs={"model_metadata": "0" * 64})
    code, output = _in_process(folder, capsys)
    assert code == 1 and "model.json was changed after the gate" in output


def test_require_blessed_refuses_a_verdict_that_records_no_metadata_digest(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit_verdict(folder, inputs={})
    code, output = _in_process(folder, capsys)
    assert code == 1 and "inputs.model_metadata" in output


def test_require_blessed_with_a_key_refuses_unsigned_and_accepts_signed(
    folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, public = keygen(tmp_path / "keys")
    monkeypatch.setenv("CENSUS_VERIFY_KEY", public.read_text(encoding="utf-8"))
    code, output = _in_process(folder, capsys)
    assert code == 1 and "not signed" in output
    monkeypatch.setenv("CENSUS_SIGNING_KEY_FILE", str(private))
    key = signing_key_from_env()
    assert key is not None
    verdict = Verdict.model_validate_json((folder / "verdict.json").read_bytes())
    (folder / "verdict.json").write_bytes(json_bytes(signed(verdict, key).model_dump(mode="json")))
    code, output = _in_process(folder, capsys)
    assert code == 0 and "signed by key" in output, output


@pytest.mark.slow
def test_require_blessed_accepts_the_real_gates_verdict(carded_project: Params) -> None:
    paths = carded_project.paths
    script = str(SCRIPTS / "require_blessed.py")
    files = [paths.verdict, paths.model_file, paths.model_metadata]
    argv = [sys.executable, "-I", script, *map(str, files)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_job_summary_shows_the_verdict_failures_first_and_the_metrics(tmp_path: Path) -> None:
    project = _summary_project(tmp_path)
    paths = load_params(project).paths
    paths.verdict.parent.mkdir(parents=True)
    paths.verdict.write_text(json.dumps(_verdict(False, "ab" * 32)), encoding="utf-8")
    paths.metrics.parent.mkdir(parents=True)
    paths.metrics.write_text(json.dumps({"roc_auc": 0.9312, "f1": 0.7}), encoding="utf-8")
    text = _job_summary(project)
    assert text.startswith("## Pipeline: model not blessed")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[1].startswith("| fpr_parity sex | fairness | 0.3 |")
    assert "Female \\| Male FPR ratio" in rows[1], "a | in a reason must not split the row"
    assert "| roc_auc | 0.9312 |" in rows


def test_job_summary_says_what_is_missing_without_failing(tmp_path: Path) -> None:
    text = _job_summary(_summary_project(tmp_path))
    assert "No verdict" in text and "No metrics" in text


def _summary_project(tmp_path: Path) -> Path:
    params = tmp_path / "params.yaml"
    params.write_text((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return params


def _job_summary(params: Path) -> str:
    argv = [sys.executable, str(SCRIPTS / "job_summary.py"), "--params", str(params)]
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    return result.stdout
