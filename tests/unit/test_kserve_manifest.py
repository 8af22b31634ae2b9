"""docs/kserve.yaml is documented, not run here: hold it to the service it deploys."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from census_pipeline.api.main import create_app
from census_pipeline.api.settings import Settings, setting_variables

REPO = Path(__file__).resolve().parents[2]


def _container() -> dict[str, Any]:
    manifest = yaml.safe_load((REPO / "docs" / "kserve.yaml").read_text(encoding="utf-8"))
    assert manifest["apiVersion"].startswith("serving.kserve.io/")
    assert manifest["kind"] == "InferenceService"
    (container,) = manifest["spec"]["predictor"]["containers"]
    assert container["name"] == "kserve-container"
    found: dict[str, Any] = container
    return found


def test_the_manifests_settings_are_the_services() -> None:
    names = {item["name"] for item in _container()["env"]}
    ours = {name for name in names if name.startswith("CENSUS_API_")}
    assert ours and ours <= set(setting_variables())


def test_the_manifests_port_and_probes_are_the_services(tmp_path: Path) -> None:
    container = _container()
    env = {item["name"]: item.get("value") for item in container["env"]}
    (port,) = [p["containerPort"] for p in container["ports"]]
    assert str(port) == env["PORT"]
    exposed = re.search(r"^EXPOSE (\d+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert exposed is not None and int(exposed.group(1)) == port
    app = create_app(Settings(model_dir=tmp_path))
    gets = {path for path, item in app.openapi()["paths"].items() if "get" in item}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == port
        assert container[probe]["httpGet"]["path"] in gets
