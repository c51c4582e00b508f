"""Routing checks: VirtualService destinations, gateways, conflicts, unreachable rules,
weights, and conflicting Gateways (IST0101, IST0109, IST0112, IST0130-0132, IST0145, MPY3003)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

from mesh.analyze.common import Path, diag, of_kind, registry_host
from mesh.diagnostics import Diagnostic, did_you_mean
from mesh.model import (
    DestinationRule,
    Gateway,
    Resource,
    VirtualService,
)
from mesh.model.virtual_service import HTTPMatchRequest
from mesh.topology import Topology


def _subsets(resources: Sequence[Resource], topo: Topology) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for dr in of_kind(resources, DestinationRule):
        fqdn = topo.resolve_host(dr.host, dr.namespace)
        out[fqdn].update(s.name for s in dr.subsets)
    return out


def check_virtual_service_destinations(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """IST0101/IST0112: every destination (and mirror) host exists; every subset is defined in a
    DestinationRule for that host; multi-port destinations name a port."""
    subsets = _subsets(resources, topo)
    hosts = [s.hostname for s in topo.services]
    for vs in of_kind(resources, VirtualService):
        targets: list[tuple[Path, str, str, int | None]] = []
        for i, http in enumerate(vs.http):
            for j, d in enumerate(http.route):
                port = d.destination.port.number if d.destination.port else None
                targets.append(
                    (("spec", "http", i, "route", j, "destination"), d.destination.host,
                     d.destination.subset, port)
                )  # fmt: skip
            if http.mirror is not None:
                targets.append(
                    (("spec", "http", i, "mirror"), http.mirror.host, http.mirror.subset, None)
                )
            for k, m in enumerate(http.mirrors):
                path: Path = ("spec", "http", i, "mirrors", k, "destination")
                targets.append((path, m.destination.host, m.destination.subset, None))
        for i, tcp in enumerate(vs.tcp):
            for j, rd in enumerate(tcp.route):
                port = rd.destination.port.number if rd.destination.port else None
                targets.append(
                    (("spec", "tcp", i, "route", j, "destination"), rd.destination.host,
                     rd.destination.subset, port)
                )  # fmt: skip
        for path, host, subset, port in targets:
            fqdn = registry_host(topo, host, vs.namespace)
            if fqdn is None:
                short = [h.split(".")[0] for h in hosts]
                hint = did_you_mean(host.split(".")[0], short) or (
                    "define a Service (or a ServiceEntry for external hosts)"
                )
                yield diag("IST0101", vs, (*path, "host"),
                            f'referenced host not found: "{host}"', hint)  # fmt: skip
                continue
            if subset and subset not in subsets.get(fqdn, set()):
                known = subsets.get(fqdn, set())
                hint = did_you_mean(subset, known) or (
                    f"subsets defined for {fqdn}: {', '.join(sorted(known))}"
                    if known
                    else f"add a DestinationRule for {host} with a subset named {subset}"
                )
                yield diag("IST0101", vs, (*path, "subset"),
                            f'referenced host+subset in destinationrule not found: "{host}+{subset}"',
                            hint)  # fmt: skip
            service = topo.service(fqdn)
            if service is not None and port is None and len(service.ports) > 1:
                yield diag("IST0112", vs, path,
                            f'this VirtualService must specify port for destination host "{host}" '
                            f"(it has {len(service.ports)} ports)",
                            "add destination.port.number")  # fmt: skip


def _gateway_ref(vs: VirtualService, ref: str) -> tuple[str, str]:
    if "/" in ref:
        ns, _, name = ref.partition("/")
        return ns, name
    if "." in ref:  # name.namespace.svc.cluster.local form
        name, _, rest = ref.partition(".")
        return rest.split(".")[0], name
    return vs.namespace, ref


def check_virtual_service_gateways(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """IST0101: referenced gateways exist. IST0132: the VS hosts are admitted by the gateway."""
    del topo
    gateways = {(g.namespace, g.name): g for g in of_kind(resources, Gateway)}
    for vs in of_kind(resources, VirtualService):
        for i, ref in enumerate(vs.gateways):
            if ref == "mesh":
                continue
            key = _gateway_ref(vs, ref)
            gw = gateways.get(key)
            if gw is None:
                hint = did_you_mean(key[1], [n for _, n in gateways])
                yield diag("IST0101", vs, ("spec", "gateways", i),
                            f'referenced gateway not found: "{ref}"', hint)  # fmt: skip
                continue
            admitted = [h.split("/")[-1] for s in gw.servers for h in s.hosts]
            for j, host in enumerate(vs.hosts):
                if not any(_host_matches(host, a) for a in admitted):
                    yield diag("IST0132", vs, ("spec", "hosts", j),
                                f'one or more host "{host}" defined in VirtualService {vs.namespace}/'
                                f"{vs.name} not found in Gateway {gw.namespace}/{gw.name}",
                                f"gateway hosts: {', '.join(admitted)}")  # fmt: skip


def _host_matches(host: str, pattern: str) -> bool:
    if pattern in ("*", host):
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    if host.startswith("*."):
        return pattern.endswith(host[1:])
    return False


def check_conflicting_virtual_services(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """IST0109: several mesh-bound VirtualServices for one host (a sidecar keeps only one)."""
    by_host: dict[str, list[tuple[VirtualService, int]]] = defaultdict(list)
    for vs in of_kind(resources, VirtualService):
        if vs.gateways and "mesh" not in vs.gateways:
            continue
        for j, host in enumerate(vs.hosts):
            by_host[topo.resolve_host(host, vs.namespace)].append((vs, j))
    for host, users in sorted(by_host.items()):
        if len(users) < 2:
            continue
        names = ", ".join(f"{v.namespace}/{v.name}" for v, _ in users)
        for vs, j in users:
            yield diag("IST0109", vs, ("spec", "hosts", j),
                        f'the VirtualServices {names} associated with mesh define the same host or '
                        f'wildcard host "{host}"',
                        "merge them into one VirtualService, or use delegation")  # fmt: skip


def check_unreachable_rules(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0130: rules after a rule without match never apply; rules whose every match repeats an
    earlier one are unreachable. IST0131: a single match identical to an earlier one."""
    del topo
    for vs in of_kind(resources, VirtualService):
        seen: set[HTTPMatchRequest] = set()
        catch_all: int | None = None
        for i, http in enumerate(vs.http):
            label = f'{i} "{http.name}"' if http.name else f"{i}"
            if catch_all is not None:
                yield diag("IST0130", vs, ("spec", "http", i),
                            f"VirtualService rule #{label} not used (only the last rule can have no "
                            f"matches; rule #{catch_all} matches every request)",
                            "move the catch-all rule last, or give it a match")  # fmt: skip
                continue
            if not http.match:
                catch_all = i
                continue
            repeats = [j for j, m in enumerate(http.match) if m in seen]
            if len(repeats) == len(http.match):
                yield diag("IST0130", vs, ("spec", "http", i, "match"),
                            f"VirtualService rule #{label} not used (all its matches repeat earlier "
                            "rules' matches)", "remove the rule or change its matches")  # fmt: skip
            else:
                for j in repeats:
                    yield diag("IST0131", vs, ("spec", "http", i, "match", j),
                                f"VirtualService rule #{label} match #{j} is not used (duplicate of an "
                                "earlier match)")  # fmt: skip
            seen.update(http.match)
        tcp_catch_all: int | None = None
        for i, tcp in enumerate(vs.tcp):
            if tcp_catch_all is not None:
                yield diag("IST0130", vs, ("spec", "tcp", i),
                            f"VirtualService tcp rule #{i} not used (rule #{tcp_catch_all} has no "
                            "match and takes every connection)")  # fmt: skip
            elif not tcp.match:
                tcp_catch_all = i


def check_route_weights(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """MPY3003: a route whose destinations all weigh 0 sends nowhere."""
    del topo
    for vs in of_kind(resources, VirtualService):
        for i, http in enumerate(vs.http):
            weights = [d.weight for d in http.route]
            if len(weights) > 1 and all((w or 0) == 0 for w in weights):
                yield diag("MPY3003", vs, ("spec", "http", i, "route"),
                            "every destination of this route has weight 0",
                            "give at least one destination a positive weight")  # fmt: skip


def check_conflicting_gateways(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """IST0145: two Gateways on the same gateway pods declare the same port and host."""
    gateways = of_kind(resources, Gateway)
    for i, a in enumerate(gateways):
        pods_a = {p.name for p in topo.select_pods(None, a.selector)}
        for b in gateways[i + 1 :]:
            if not pods_a & {p.name for p in topo.select_pods(None, b.selector)}:
                continue
            for sa in a.servers:
                for sb in b.servers:
                    if sa.port.number != sb.port.number or sa.bind != sb.bind:
                        continue
                    shared = sorted(
                        {h.split("/")[-1] for h in sa.hosts} & {h.split("/")[-1] for h in sb.hosts}
                    )
                    if shared:
                        yield diag("IST0145", b, ("spec", "servers"),
                                    f"conflict with gateways {a.namespace}/{a.name} (workload "
                                    f"selector {','.join(f'{k}={v}' for k, v in b.selector.items())}, "
                                    f"port {sb.port.number}, hosts {', '.join(shared)})",
                                    "merge the servers into one Gateway or use distinct hosts")  # fmt: skip
