"""No way in that should not be there: what only meshplay may reach listens on 127.0.0.1 and is
not routable through the ingress gateway; key material stays private.

In a cluster, Envoy's admin interface (``localhost:15000``) is bound to the pod's loopback and
the ingress gateway routes only what a Gateway + VirtualService expose. Here every process of
the mesh must bind 127.0.0.1 only, and requests for admin paths sent through the gateway (with
the shop's Gateway + VirtualService applied, as ``meshplay up`` does) must never reach an
Envoy's admin page or a service's lesson knobs. The local CA's private keys are written 0600 in
a folder only the user can enter, and no key material is tracked by git.
"""

from __future__ import annotations

import http.client
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.local.apps import ROOT
from cluster.local.mesh import LocalMesh
from mesh.app import load_app
from mesh.source import load_text
from mesh.topology import INGRESS_GATEWAY

pytestmark = pytest.mark.envoy

ADMIN_PATHS = ("/stats", "/config_dump", "/server_info", "/clusters", "/certs", "/listeners")
ADMIN_MARKERS = ("cluster_manager", "uptime_current_epoch", "configs", "listener_manager",
                 "cert_chain", "::cx_active")  # fmt: skip


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    app = load_app(ROOT / "lessons" / "apps" / "ecommerce")
    istio: list[object] = []
    for path in sorted((app.path / "istio").glob("*.yaml")):
        istio.extend(load_text(path.read_text(), str(path), default_namespace="shop").resources)
    workdir = Path(tmp_path_factory.mktemp("nowayin")) / "mesh"
    with LocalMesh(workdir, seed=3) as m:
        m.start((*app.resources, *istio))  # type: ignore[arg-type]
        yield m


def _listening_inodes() -> dict[int, str]:
    """inode -> local address of every listening TCP socket (IPv4 and IPv6)."""
    out: dict[int, str] = {}
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            addr_hex, port_hex = fields[1].split(":")
            if v6:
                addr = "::1" if addr_hex == "0" * 24 + "01000000" else f"v6:{addr_hex}"
            else:
                addr = ".".join(str(int(addr_hex[i : i + 2], 16)) for i in (6, 4, 2, 0))
            out[int(fields[9])] = f"{addr}:{int(port_hex, 16)}"
    return out


def _sockets_of(pid: int) -> set[int]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def test_every_process_of_the_mesh_listens_on_loopback_only(mesh: LocalMesh) -> None:
    listening = _listening_inodes()
    seen: dict[str, list[str]] = {}
    for proc in mesh.supervisor.procs.values():
        addrs = [listening[i] for i in _sockets_of(proc.pid) if i in listening]
        seen[proc.name] = addrs
    assert any(seen.values()), seen
    exposed = {n: a for n, a in seen.items() if any(not x.startswith("127.0.0.1:") for x in a)}
    assert not exposed, exposed
    # and the admin and knob ports are among them: what the test checks is what matters
    gw = next(p for p in mesh.pods.values() if p.pod.workload == INGRESS_GATEWAY)
    all_addrs = {a for addrs in seen.values() for a in addrs}
    assert f"127.0.0.1:{gw.admin_port}" in all_addrs


def _gateway_port(mesh: LocalMesh) -> int:
    gw = next(p for p in mesh.pods.values() if p.pod.workload == INGRESS_GATEWAY)
    return gw.ports.listeners[next(iter(gw.ports.listeners))]


def _request(port: int, method: str, path: str, host: str, body: bytes | None = None) -> tuple[int, str]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Host": host}
        if body is not None:
            headers["content-type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def test_admin_paths_and_knobs_are_not_reachable_through_the_ingress_gateway(
    mesh: LocalMesh,
) -> None:
    port = _gateway_port(mesh)
    status, _ = _request(port, "GET", "/api/products", "shop.example")
    assert status == 200  # the gateway does route the shop: the probes below are meaningful
    hosts = ["shop.example", "localhost"] + [
        f"127.0.0.1:{pp.admin_port}" for pp in mesh.pods.values() if pp.proxy is not None
    ]
    for host in hosts:
        for path in (*ADMIN_PATHS, "/admin/knobs", "/quitquitquit?x=1"):
            status, body = _request(port, "GET", path, host)
            leaked = [m for m in ADMIN_MARKERS if m in body]
            assert not leaked, (host, path, status, body[:200])
            if path == "/admin/knobs":
                assert status == 404, (host, status, body[:200])
        status, body = _request(port, "PUT", "/admin/knobs", host, b'{"error_rate": 1.0}')
        assert status in (404, 405), (host, status, body[:200])
    # no knob changed anywhere, and every Envoy still runs
    for pp in mesh.pods.values():
        if pp.app:
            status, body = _request(pp.knob_port, "GET", "/admin/knobs", "localhost")
            assert status == 200 and json.loads(body)["error_rate"] == 0.0, (pp.pod.name, body)
    assert all(p.running() for p in mesh.supervisor.procs.values())


def test_knobs_answer_on_the_knob_port_only(mesh: LocalMesh) -> None:
    """The app's main port (what its sidecar forwards the mesh's requests to) does not serve
    the knobs; the knob port, which meshplay alone uses, does."""
    (pp,) = mesh.pods_of("product-v1")
    app_port = next(iter(pp.ports.app.values()))
    assert _request(app_port, "GET", "/admin/knobs", "product")[0] == 404
    assert _request(app_port, "PUT", "/admin/knobs", "product", b'{"refuse": true}')[0] == 404
    assert _request(pp.knob_port, "GET", "/admin/knobs", "localhost")[0] == 200


def test_private_keys_are_0600_in_a_private_folder(mesh: LocalMesh) -> None:
    keys = [
        p
        for p in mesh.workdir.rglob("*")
        if p.is_file() and p.suffix in (".pem", ".key") and b"PRIVATE KEY" in p.read_bytes()
    ]
    assert keys, "the local CA wrote no private key: nothing checked"
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, (key, oct(key.stat().st_mode))
    # the user service keeps its JWT signing keys in its database: only its owner reads it
    dbs = [p for p in (mesh.workdir / "data").rglob("*") if p.is_file() and "user" in str(p)]
    assert dbs, list((mesh.workdir / "data").rglob("*"))
    for db in dbs:
        assert stat.S_IMODE(db.stat().st_mode) & 0o077 == 0, (db, oct(db.stat().st_mode))


def test_no_key_material_is_tracked_by_git() -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    assert len(files) > 100
    found = []
    for name in filter(None, files):
        path = ROOT / name.decode()
        if path.suffix in (".png", ".ico", ".woff2") or not path.is_file():
            continue
        data = path.read_bytes()
        if b"PRIVATE KEY-----" in data and b"-----BEGIN" in data:
            for line in data.splitlines():
                if line.startswith(b"-----BEGIN") and b"PRIVATE KEY" in line:
                    found.append(name.decode())
                    break
    assert not found, found
