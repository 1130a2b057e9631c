"""constraints.txt (what `make setup` installs with -c) agrees with pyproject's bounds: a pin that
a bound excludes would make pip refuse the install, and a bound nobody pins is a bound untested."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
# The checkpointer packages whose next major may change the saver contract under storage/checkpoints.py.
CHECKPOINT_PACKAGES = ("langgraph-checkpoint", "langgraph-checkpoint-postgres", "langgraph-checkpoint-sqlite")


def declared() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    return {canonicalize_name(requirement.name): requirement for requirement in map(Requirement, requirements)}


def pinned() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        name, separator, version = line.strip().partition("==")
        if separator:
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_every_pinned_version_satisfies_the_declared_bounds() -> None:
    pins = pinned()
    outside = {name: f"{pins[name]} vs {requirement.specifier}" for name, requirement in declared().items()
               if name in pins and not requirement.specifier.contains(pins[name], prereleases=True)}
    assert not outside


def test_checkpoint_packages_are_bounded_below_their_next_major() -> None:
    requirements, pins = declared(), pinned()
    for name in CHECKPOINT_PACKAGES:
        assert name in requirements, f"{name} is not declared in pyproject.toml"
        requirement = requirements[name]
        next_major = Version(f"{pins[name].major + 1}")
        assert not requirement.specifier.contains(next_major, prereleases=True), name
        assert requirement.specifier.contains(pins[name]), name
