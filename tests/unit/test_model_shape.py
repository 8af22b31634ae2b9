"""The loader refuses any model that is not a single-output binary classifier, without crashing.

Before the shape checks, a 32-class model with matching metadata made the C single-row path
write 32 numbers into a 1-number buffer (heap corruption, then a segfault). Every probe that
loads an odd model runs in a child process, so a crash fails the test instead of killing pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import lightgbm as lgb
import pytest
from model_folders import booster_text, metadata_for, write_folder

from census_pipeline.artifact import ArtifactError, save_model
from census_pipeline.predict import FAST_PATH_CHECKED_LIGHTGBM

HERE = Path(__file__).resolve().parent
BINARY_SHAPE = {"objective": "binary", "num_class": 1, "num_model_per_iteration": 1}

# Loads each folder named on stdin through the trust check, scores one record on every path,
# and prints one JSON object: what happened to each. Exit status 0 unless the process crashes.
PROBE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from census_pipeline.errors import PipelineError
    from census_pipeline.trust import load_trusted_model

    outcomes = {}
    for name, (folder, record) in json.load(sys.stdin).items():
        try:
            trusted = load_trusted_model(Path(folder))
        except PipelineError as exc:
            outcomes[name] = {"refused": str(exc)}
            continue
        one = trusted.predictor.probability_one(record)
        many = trusted.predictor.predict_many([record, record]).probabilities.tolist()
        outcomes[name] = {"loaded": [one, *many]}
    print(json.dumps(outcomes))
    """
)


def _record(text: str) -> dict[str, Any]:
    return dict.fromkeys(lgb.Booster(model_str=text).feature_name(), 1.0)


def _folders(root: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every probe's folder, written once: name -> (folder, a record with its features)."""
    cases: dict[str, tuple[str, dict[str, Any]]] = {}

    def add(name: str, text: str, metadata: dict[str, Any] | None = None) -> None:
        write_folder(root / name, text, metadata)
        cases[name] = (str(root / name), _record(text))

    for objective, num_class in KINDS:
        add(f"{objective}-{num_class}", booster_text(objective, num_class))
    text = booster_text("multiclass", 32)
    claims_binary = metadata_for(text)
    claims_binary["model_shape"] = {**claims_binary["model_shape"], **BINARY_SHAPE}
    add("claims-binary", text, claims_binary)
    # The text's objective line says binary; its class counts still say 32.
    add(
        "binary-header",
        text.replace("objective=multiclass num_class:32", "objective=binary sigmoid:1"),
    )
    text = booster_text(num_features=5)
    fewer = metadata_for(text)
    fewer["feature_names"] = fewer["feature_names"][:3]
    fewer["model_shape"] = {**fewer["model_shape"], "num_features": 3}
    add("fewer-features", text, fewer)
    unrecorded = metadata_for(booster_text())
    del unrecorded["model_shape"]
    add("no-shape", booster_text(), unrecorded)
    add("binary", booster_text())
    return cases


KINDS = [("multiclass", 32), ("multiclassova", 3), ("regression", 1), ("cross_entropy", 1)]


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """All probes in one child process (each costs an import of LightGBM otherwise)."""
    cases = _folders(tmp_path_factory.mktemp("shapes"))
    argv = [sys.executable, "-c", PROBE]
    done = subprocess.run(
        argv, input=json.dumps(cases), capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"the loader crashed ({done.returncode}): {done.stderr[-2000:]}"
    outcomes: dict[str, dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return outcomes


@pytest.mark.parametrize(("objective", "num_class"), KINDS)
def test_a_model_of_another_kind_with_matching_metadata_is_refused(
    probed: dict[str, dict[str, Any]], objective: str, num_class: int
) -> None:
    refusal = probed[f"{objective}-{num_class}"].get("refused", "")
    assert "not a single-output binary model" in refusal
    assert f"objective '{objective}'" in refusal and "\n" not in refusal


def test_a_multiclass_model_whose_metadata_claims_binary_is_refused(
    probed: dict[str, dict[str, Any]],
) -> None:
    assert "not a single-output binary model" in probed["claims-binary"].get("refused", "")


def test_a_multiclass_header_dressed_as_binary_is_refused(
    probed: dict[str, dict[str, Any]],
) -> None:
    refusal = probed["binary-header"].get("refused", "")
    assert "32 classes with 32 models per iteration" in refusal


def test_a_feature_count_other_than_the_metadatas_is_refused(
    probed: dict[str, dict[str, Any]],
) -> None:
    assert "shape" in probed["fewer-features"].get("refused", "")


def test_metadata_without_a_recorded_shape_is_refused(probed: dict[str, dict[str, Any]]) -> None:
    assert "model_shape: Field required" in probed["no-shape"].get("refused", "")


def test_a_binary_model_loads_and_scores_one_probability(
    probed: dict[str, dict[str, Any]],
) -> None:
    scores = probed["binary"]["loaded"]
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert scores[0] == pytest.approx(scores[1])


def test_save_model_refuses_to_write_a_model_every_load_would_refuse(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="objective 'multiclass'"):
        save_model(
            booster_text("multiclass", 4), {}, tmp_path / "model.txt", tmp_path / "model.json"
        )
    assert not (tmp_path / "model.txt").exists()


def test_the_private_fast_path_is_used_only_with_the_lightgbm_it_was_checked_against() -> None:
    # predict.py calls LightGBM's C API through its private `_LIB` and `Booster._handle`; a
    # LightGBM outside this range must be re-checked (c_api.h) before the range is widened.
    low, high = FAST_PATH_CHECKED_LIGHTGBM
    installed = tuple(int(part) for part in lgb.__version__.split(".")[:2])
    assert low <= installed < high, f"LightGBM {lgb.__version__}: re-check predict.py's C calls"


FUZZ = textwrap.dedent(
    """
    import json, sys, tempfile
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from hypothesis import HealthCheck, given, settings, strategies as st
    from model_folders import booster_text, metadata_for, write_folder
    from census_pipeline.errors import PipelineError
    from census_pipeline.trust import load_trusted_model

    kinds = st.sampled_from(
        [("binary", 1), ("multiclass", 2), ("multiclass", 7), ("multiclass", 32),
         ("multiclassova", 3), ("regression", 1), ("cross_entropy", 1), ("huber", 1)]
    )
    lies = st.sampled_from(["none", "claims-binary", "drops-a-feature", "binary-header"])
    outcomes = {"refused": 0, "loaded": 0}

    @settings(max_examples=int(sys.argv[2]), deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(kinds, st.integers(1, 6), st.integers(1, 3), lies)
    def probe(kind, num_features, rounds, lie):
        objective, num_class = kind
        text = booster_text(objective, num_class, num_features, rounds)
        if lie == "binary-header":
            text = text.replace(f"objective={objective}", "objective=binary sigmoid:1 x", 1)
        metadata = metadata_for(text)
        if lie == "claims-binary":
            metadata["model_shape"].update(objective="binary", num_class=1,
                                           num_model_per_iteration=1)
        if lie == "drops-a-feature" and num_features > 1:
            metadata["feature_names"] = metadata["feature_names"][:-1]
            metadata["model_shape"]["num_features"] -= 1
        folder = Path(tempfile.mkdtemp())
        write_folder(folder, text, metadata)
        record = dict.fromkeys(metadata["feature_names"], 0.5)
        try:
            trusted = load_trusted_model(folder)
        except PipelineError as exc:
            assert "\\n" not in str(exc), exc
            outcomes["refused"] += 1
            return
        # Anything that loads must be a binary model scoring one probability per row.
        assert objective in ("binary", "cross_entropy", "huber", "regression") or num_class == 1
        one = trusted.predictor.probability_one(record)
        many = trusted.predictor.predict_many([record] * 3).probabilities
        assert many.shape == (3,) and 0.0 <= one <= 1.0, (one, many)
        trusted.predictor.close()
        outcomes["loaded"] += 1

    probe()
    print(json.dumps(outcomes))
    """
)


def test_fuzzing_the_loader_with_odd_but_parseable_models_finds_no_crash() -> None:
    argv = [sys.executable, "-c", FUZZ, str(HERE), "40"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"crash or failure ({done.returncode}): {done.stderr[-3000:]}"
    outcomes = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcomes["refused"] > 0 and outcomes["loaded"] > 0, outcomes
