"""The install comes from uv.lock: it must still describe pyproject.toml, and pin a torch stack that loads."""

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str) -> dict:
    with open(ROOT / name, "rb") as file:
        return tomllib.load(file)


def _normalized(requirement: str) -> tuple[str, str, str]:
    parsed = Requirement(requirement)
    return parsed.name.lower().replace("_", "-"), str(parsed.specifier), str(parsed.marker or "")


def _pyproject_requirements() -> set[tuple[str, str, str]]:
    project = _load("pyproject.toml")["project"]
    wanted = {_normalized(r) for r in project["dependencies"]}
    for extra, requirements in project.get("optional-dependencies", {}).items():
        wanted |= {_normalized(f'{r}; extra == "{extra}"') for r in requirements}
    return wanted


def _locked_packages() -> dict[str, dict]:
    return {package["name"]: package for package in _load("uv.lock")["package"]}


def _lock_requirements() -> set[tuple[str, str, str]]:
    metadata = _locked_packages()["voicefake"]["metadata"]["requires-dist"]
    lines = []
    for entry in metadata:
        line = entry["name"] + entry.get("specifier", "")
        if "marker" in entry:
            line += "; " + entry["marker"]
        lines.append(line)
    return {_normalized(line) for line in lines}


def test_lock_matches_pyproject():
    wanted, locked = _pyproject_requirements(), _lock_requirements()
    assert wanted == locked, (
        "uv.lock no longer matches pyproject.toml: run `make lock` and commit uv.lock "
        f"(only in pyproject: {sorted(wanted - locked)}; only in the lock: {sorted(locked - wanted)})"
    )


def test_lock_pins_a_torch_stack_that_loads_together():
    packages = _locked_packages()
    # torchaudio x.y.z is built against torch x.y.z only (torchaudio 2.11.1 does not load with torch 2.11.0).
    assert packages["torchaudio"]["version"] == packages["torch"]["version"]
    assert all("version" in package for package in packages.values()), "every locked package has an exact version"
