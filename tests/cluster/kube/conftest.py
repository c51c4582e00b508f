"""A fresh in-memory Kubernetes API per test, and a kube API client for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.kube.api import KubeApi
from tests.cluster.kube.fake_api import FakeKube


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKube]:
    """The fake API server, serving on 127.0.0.1; the kube runner's executor reads the fake
    cluster's clock (:mod:`tests.cluster.kube.clock`)."""
    kube = FakeKube().start()
    monkeypatch.setattr("cluster.kube.executor.time", kube.clock.module)
    yield kube
    kube.stop()


@pytest.fixture
def kubeconfig(fake: FakeKube, tmp_path: Path) -> Path:
    """A kubeconfig whose current context ``fake`` points at the fake API."""
    return fake.kubeconfig(tmp_path)


@pytest.fixture
def api(kubeconfig: Path) -> Iterator[KubeApi]:
    """The runner's API client, through the generated kubeconfig."""
    client = KubeApi.connect("fake", str(kubeconfig))
    yield client
    client.close()
