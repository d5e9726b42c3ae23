"""The browser tests' fixtures: what a run needs, and each test's outcome on its item (so
fixtures can save artefacts on failure). Their helpers are jupyter_e2e.py's."""

from __future__ import annotations

import pytest
from jupyter_e2e import built_renderer, missing_requirements


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def ready() -> None:
    """JupyterLab, chromium, Playwright and the built renderer, or the test is skipped."""
    why = missing_requirements("lab") or (
        None if built_renderer() else "the renderer is not built (pip install .)")
    if why:
        pytest.skip(why)


@pytest.fixture(scope="module")
def graphviz() -> None:
    """Graphviz's dot, which draws %show tree, or the test is skipped."""
    from rootfs_kernel.views.tree import dot_program

    if not dot_program():
        pytest.skip("Graphviz is not installed (apt-get install graphviz)")
