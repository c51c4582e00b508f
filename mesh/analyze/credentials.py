"""Gateway credentials, as istioctl's ``gateway.SecretAnalyzer`` checks them, and what Envoy
would then reject.

* IST0101: a server's ``credentialName`` names no Secret in the gateway pods' namespace
  (istiod sends no certificate: the server's chain fails every TLS handshake).
* IST0161: the Secret exists but has no certificate istiod can read (neither ``cert``/``key`` nor
  ``tls.crt``/``tls.key``), or the certificate does not parse or is expired (istioctl's test).
* MPY3020, at the Secret's key: the precise reason, including what istioctl does not check
  but Envoy refuses (a private key that is not the certificate's, a key that does not parse,
  a MUTUAL server whose ``-cacert`` has no CA).
* MPY1010: a ``data`` value of any Secret that is not base64 (the API server refuses it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from mesh.analyze.common import diag, go_quote, of_kind
from mesh.diagnostics import Diagnostic
from mesh.model import Gateway, Resource, Secret
from mesh.security.credentials import CredentialProblem, read_credential
from mesh.topology import Topology

__all__ = ["check_gateway_credentials", "check_secret_data"]

_TERMINATING = {"SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL"}


def check_secret_data(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """MPY1010: a Secret ``data`` value that is not valid base64."""
    del topo
    for secret in of_kind(resources, Secret):
        for key, value in secret.decoded().items():
            if value is None and key in secret.data:
                yield diag("MPY1010", secret, ("data", key),
                           f'the value of "{key}" is not valid base64',
                           "data values are base64 (base64 -w0 FILE); put plain text under "
                           "stringData instead")  # fmt: skip


def _problem(gw: Gateway, where: tuple[str | int, ...], p: CredentialProblem) -> Diagnostic:
    if p.secret is None:
        return diag("MPY3020", gw, where, p.message)
    path: tuple[str | int, ...] = (
        ("data", p.key) if p.key in p.secret.data else ("stringData", p.key)
    )
    if not p.key:
        path = ("data",) if p.secret.data else ("stringData",) if p.secret.string_data else ()
    return diag("MPY3020", p.secret, path, f"credential of Gateway {gw.namespace}/{gw.name}: "
                f"{p.message}", "the server's TLS chain is not ready: every handshake fails")  # fmt: skip


def check_gateway_credentials(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """IST0101 (credentialName), IST0161 and MPY3020 for every terminating server."""
    secrets = of_kind(resources, Secret)
    for gw in of_kind(resources, Gateway):
        pods = topo.select_pods(None, gw.selector)
        if not pods:
            continue  # IST0101 for the selector (check_gateway_workloads)
        namespace = pods[0].namespace
        for i, server in enumerate(gw.servers):
            tls = server.tls
            if tls is None or not tls.credential_name:
                continue
            mode = tls.mode.upper()
            where: tuple[str | int, ...] = ("spec", "servers", i, "tls", "credentialName")
            cred = read_credential(
                secrets,
                tls.credential_name,
                namespace,
                mutual=mode in {"MUTUAL", "OPTIONAL_MUTUAL"},
            )
            if cred.problems and cred.problems[0].kind == "missing":
                elsewhere = sorted(s.namespace for s in secrets if s.name == tls.credential_name)
                seen = f"a Secret of that name is in {', '.join(elsewhere)}; " if elsewhere else ""
                yield diag("IST0101", gw, where,
                           f"Referenced credentialName not found: {go_quote(tls.credential_name)}",
                           f"{seen}istiod reads it from namespace {namespace} (the gateway "
                           f"pods'): kubectl create -n {namespace} secret tls "
                           f"{tls.credential_name} --cert=CERT --key=KEY")  # fmt: skip
                continue
            if mode not in _TERMINATING:
                continue
            if any(p.istioctl for p in cred.problems):
                yield diag("IST0161", gw, where,
                           f"The credential referenced by the Gateway {gw.name} in namespace "
                           f"{gw.namespace} is invalid, which can cause the traffic not to work "
                           "as expected.")  # fmt: skip
            for p in (*cred.problems, *cred.ca_problems):
                yield _problem(gw, where, p)
