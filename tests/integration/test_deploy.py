"""The deployment files: the compose file validates, the image carries every package."""

from __future__ import annotations

import shutil
import subprocess
import tomllib

import pytest

from tests.support import ROOT


def _compose() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    return None


def test_compose_file_is_valid() -> None:
    compose = _compose()
    if compose is None:
        pytest.skip(
            "neither docker-compose nor the docker compose plugin is installed (.ci/run installs it)"
        )
    result = subprocess.run(
        [*compose, "-f", "docker-compose.yml", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "postgres:15" in result.stdout
    assert "moerge-coordinator migrate && exec moerge-coordinator serve" in result.stdout


def test_image_copies_every_package_of_the_distribution() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]
    for pattern in packages["include"]:
        name = pattern.rstrip("*")
        assert f"COPY {name} ./{name}" in dockerfile, f"the image lacks the {name} package"
