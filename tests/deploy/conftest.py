"""The deploy checks need no broker and no database: `make k8s-validate` runs them alone."""

import pytest

from tests.deploy import k8s


@pytest.fixture(scope="session")
def rendered():
    """``{overlay: [objects]}`` for every overlay in deploy/k8s/overlays (rendered once)."""
    return {name: k8s.render(k8s.OVERLAYS / name) for name in k8s.overlays()}
