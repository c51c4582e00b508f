"""``meshplay cluster check|up|down`` against no cluster and against the in-memory API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cluster.kube import admin
from cluster.kube.api import KubeApi
from cluster.kube.live import Timeouts
from cluster.kube.telemetry import has_providers
from mesh.app import load_app
from playground.cli import main
from tests.cluster.kube.fake_api import FakeKube

ROOT = Path(__file__).resolve().parents[3]
APP = load_app(ROOT / "lessons/apps/ecommerce")
FAST = Timeouts(rollout_s=3, converge_s=3, poll_s=0.05)


def _cli(*args: str, kubeconfig: str) -> subprocess.CompletedProcess[str]:
    env = {"KUBECONFIG": kubeconfig, "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    return subprocess.run([sys.executable, "-m", "playground", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


@pytest.mark.parametrize("kind", ["no kubeconfig", "nothing listening"])
def test_check_without_a_cluster_says_so_in_one_line(tmp_path: Path, kind: str) -> None:
    """No kubeconfig, or an API that does not answer: one line, exit 1, no traceback."""
    path = tmp_path / "kubeconfig"
    if kind == "nothing listening":
        with __import__("socket").socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "gone",
            "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "gone", "context": {"cluster": "c", "user": "u"}}],
        }))  # fmt: skip
    out = _cli("cluster", "check", kubeconfig=str(path))
    assert out.returncode == 1
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.startswith("no Kubernetes cluster: ")
    assert "Traceback" not in out.stderr


def test_check_lists_what_is_missing_with_the_fix(fake: FakeKube, kubeconfig: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Before ``up``: the providers, the Telemetry and the namespace are missing (exit 1),
    each with its command; after: everything required is there (exit 0)."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.chdir(ROOT)
    assert main(["cluster", "check"]) == 1
    out = capsys.readouterr().out
    assert "\u2714 API server http://127.0.0.1:" in out and "Kubernetes v1.31.0-fake" in out
    assert "\u2714 istiod istiod-7c9d8-abcde (1.28.0)" in out
    assert "\u2714 Istio CRDs present" in out
    assert (
        "\u2718 mesh config: meshplay's JSON access-log providers missing\n    fix: meshplay cluster up"
        in out
    )
    assert "\u2718 namespace shop does not exist yet" in out
    assert "- Prometheus: not found" in out
    api = KubeApi.connect("fake", str(kubeconfig))
    admin.up(api, APP, "shop", report=lambda _t: None, timeouts=FAST)
    assert main(["cluster", "check"]) == 0
    out = capsys.readouterr().out
    assert "\u2714 namespace shop: sidecar injection enabled" in out
    assert "\u2714 Telemetry istio-system/meshplay-access-log" in out


def test_check_names_missing_istio(fake: FakeKube, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Without istiod and Istio's CRDs, check says to install Istio with meshplay's profile."""
    with fake.cond:
        for key in [
            k for k, o in fake.objects.items() if o["kind"] in ("CustomResourceDefinition", "Pod")
        ]:
            fake.delete(key)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert main(["cluster", "check"]) == 1
    out = capsys.readouterr().out
    assert "\u2718 istiod: no running pod labelled app=istiod in istio-system" in out
    assert "missing virtualservices.networking.istio.io" in out
    assert "istioctl install -f cluster/kube/manifests/ecommerce/istio/istio-operator.yaml" in out


def test_up_applies_the_app_and_mesh_settings_and_down_deletes_exactly_them(
    fake: FakeKube, api: KubeApi
) -> None:
    """``up``: the app with the knob port, the Telemetry, the providers in the mesh config,
    every pod ready. ``down``: what meshplay applied is gone (a lesson's leftover included),
    what others own stays, and the mesh config is as it was."""
    original_mesh = fake.find("ConfigMap", "istio-system", "istio")[0]["data"]["mesh"]
    applied = admin.up(api, APP, "shop", monitoring=True, report=lambda _t: None, timeouts=FAST)
    assert {m.kind for m in applied} >= {
        "Namespace",
        "Deployment",
        "Service",
        "Telemetry",
        "ConfigMap",
    }
    mesh = fake.find("ConfigMap", "istio-system", "istio")[0]["data"]["mesh"]
    assert has_providers(mesh) and "discoveryAddress" in mesh
    env = fake.find("Deployment", "shop", "product-v1")[0]["spec"]["template"]["spec"][
        "containers"
    ][0]["env"]
    assert {"name": "ADMIN_PORT", "value": "15999"} in env
    assert len(fake.find("Pod", "shop")) == 10
    fake.put({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
              "metadata": {"name": "left-over", "namespace": "shop",
                           "labels": {"app.kubernetes.io/managed-by": "meshplay", "meshplay.dev/part": "lesson"}},
              "spec": {"hosts": ["product"]}}, manager="meshplay")  # fmt: skip
    fake.put({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "theirs", "namespace": "istio-system", "labels": {"app.kubernetes.io/managed-by": "meshplay"}},
              "data": {}}, manager="helm")  # fmt: skip
    assert admin.down(api, report=lambda _t: None) >= len(applied)
    assert fake.find("Namespace", name="shop") == []
    assert fake.find("VirtualService") == []
    assert (
        fake.find("Telemetry") == [] and fake.find("Deployment", "istio-system", "prometheus") == []
    )
    assert fake.find("ConfigMap", "istio-system", "theirs")
    assert fake.find("Namespace", name="istio-system")
    assert yaml.safe_load(
        fake.find("ConfigMap", "istio-system", "istio")[0]["data"]["mesh"]
    ) == yaml.safe_load(original_mesh) | {
        "defaultConfig": {
            "discoveryAddress": "istiod.istio-system.svc:15012",
            "tracing": {"sampling": 100.0},
        }
    }


def test_proxy_status_and_live_proxy_config_read_the_cluster(
    fake: FakeKube, api: KubeApi, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """``proxy-status --kube`` lists istiod's proxies (STALE for one that did not ACK);
    ``proxy-config --live --kube`` reads a pod's Envoy through ``pilot-agent`` in its sidecar."""
    admin.up(api, APP, "shop", report=lambda _t: None, timeouts=FAST)
    stuck = sorted(
        p["metadata"]["name"]
        for p in fake.find("Pod", "shop")
        if p["metadata"]["name"].startswith("user-v1")
    )[0]
    fake.stuck_proxies.add(stuck)
    fake.nonce += 1
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.chdir(ROOT)
    assert main(["proxy-status", "--kube", "--namespace", "shop"]) == 1
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert lines[f"{stuck}.shop"] == ["STALE"] * 4
    assert sum(1 for v in lines.values() if v == ["SYNCED"] * 4) == 7  # 8 sidecars in shop
    code = main(
        [
            "proxy-config",
            "clusters",
            "lessons/01-request-routing",
            "--proxy",
            "product-v1",
            "--live",
            "--kube",
        ]
    )
    assert code == 0
    assert [argv for _pod, c, argv in fake.execs if c == "istio-proxy"] == [
        ["pilot-agent", "request", "GET", "config_dump"]
    ]


def test_run_on_kube_without_a_cluster_is_one_clear_error(tmp_path: Path) -> None:
    """``meshplay run --runner kube`` with no kubeconfig: exit 2, one line, no traceback."""
    out = _cli("run", "lessons/01-request-routing", "--runner", "kube", "--no-progress",
               kubeconfig=str(tmp_path / "none"))  # fmt: skip
    assert out.returncode == 2
    assert (
        out.stderr.strip()
        == f"error: runner kube failed: no kubeconfig at {tmp_path / 'none'} (set KUBECONFIG or create a cluster)"
    )


def test_up_and_down_from_the_command_line(
    fake: FakeKube, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:  # fmt: skip
    """``cluster up`` needs a Docker engine to build the image and says so in one line when
    there is none; ``--no-build`` applies and waits; ``cluster down`` removes it all again."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.chdir(ROOT)
    assert main(["cluster", "up"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no Docker engine") and len(err.strip().splitlines()) == 1
    assert fake.find("Namespace", name="shop") == []
    assert main(["cluster", "up", "--no-build"]) == 0
    out = capsys.readouterr().out
    assert "every Deployment is rolled out and every pod's istio-proxy is ready" in out
    assert fake.find("Deployment", "shop")
    assert main(["cluster", "down"]) == 0
    assert "deleted" in capsys.readouterr().out
    assert fake.find("Namespace", name="shop") == []


@pytest.mark.parametrize("script", ["setup", "deploy", "cleanup"])
def test_scripts_are_thin_wrappers_of_the_cli(script: str) -> None:
    """``cluster/kube/scripts/{setup,deploy,cleanup}`` are valid bash and end in the CLI."""
    path = ROOT / "cluster/kube/scripts" / script
    assert subprocess.run(["bash", "-n", str(path)], check=False).returncode == 0
    text = path.read_text()
    verb = {"setup": "check", "deploy": "up", "cleanup": "down"}[script]
    assert f'exec "$root/bin/meshplay" cluster {verb}' in text


def test_deploy_and_cleanup_scripts_reach_the_cli(tmp_path: Path) -> None:
    """The scripts run the real CLI: ``deploy --help`` is ``cluster up --help``, and
    ``cleanup`` without a cluster is the CLI's one-line answer."""
    env = {"KUBECONFIG": str(tmp_path / "none"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([str(ROOT / "cluster/kube/scripts/deploy"), "--help"], env=env,
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0 and "--monitoring" in out.stdout
    out = subprocess.run([str(ROOT / "cluster/kube/scripts/cleanup")], env=env,
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1].startswith(
        "no Kubernetes cluster: "
    )


def test_run_and_compare_on_kube_from_the_command_line(
    fake: FakeKube, api: KubeApi, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """``meshplay run --runner kube`` and ``compare --a sim --b kube`` reach the cluster of the
    current context (the fake one) with the runner's real defaults, and grade."""
    from mesh.lesson import load_lesson
    from tests.cluster.kube.dataplane import SimDataPlane

    admin.up(api, APP, "shop", report=lambda _t: None, timeouts=FAST)
    fake.data_plane = SimDataPlane(load_lesson(ROOT / "lessons/01-request-routing"))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.chdir(ROOT)
    args = ["lessons/01-request-routing", "--step", "1"]
    assert main(["run", *args, "--runner", "kube", "--context", "fake", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "(runner kube, seed 1)" in out and "PASSED: 2/2 expectations met" in out
    assert main(["compare", *args, "--a", "sim", "--b", "kube"]) == 0
    assert "sim vs kube" in capsys.readouterr().out
