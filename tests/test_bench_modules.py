"""Every benchmark module imports: they are not run in CI (they measure), so a refactor that
breaks one would otherwise go unseen until someone needs the figure."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import bench

MODULES = sorted(info.name for info in pkgutil.iter_modules(bench.__path__))


def test_there_are_benchmarks() -> None:
    assert {"api", "renewals", "scale", "imports"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_a_benchmark_module_imports(name: str) -> None:
    importlib.import_module(f"bench.{name}")
