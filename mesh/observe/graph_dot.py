"""The traffic graph in Graphviz's DOT language (``meshplay graph -o dot``, and ``-o png``
through Debian's ``dot``): left to right, each service a cluster holding its versioned
workloads, the load generator, gateways and destinations outside the mesh as their own shapes,
edges labelled with their numbers and coloured by Kiali's health."""

from __future__ import annotations

from mesh.observe.graph import Health, MeshGraph, NodeKind, edge_summary

__all__ = ["to_dot"]

DOT_COLOURS = {
    Health.HEALTHY: "#2e7d32",
    Health.DEGRADED: "#f9a825",
    Health.FAILURE: "#c62828",
    Health.IDLE: "#9e9e9e",
}
DOT_SHAPES = {
    NodeKind.CLIENT: "invtriangle",
    NodeKind.GATEWAY: "hexagon",
    NodeKind.SERVICE: "box",
    NodeKind.EXTERNAL: "component",
    NodeKind.PASSTHROUGH: "cds",
    NodeKind.BLACKHOLE: "doublecircle",
}


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: MeshGraph, title: str = "") -> str:
    """The graph in Graphviz's DOT language, left to right: each service a cluster holding its
    versioned workloads, edges labelled with their numbers and coloured by health."""
    lines = [
        "digraph mesh {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    if title:
        lines.append(f"  label={_quote(title)}; labelloc=t;")

    def point(node: str, version: str) -> str:
        n = graph.node(node)
        if n is not None and n.workloads and version in n.workloads:
            return _quote(f"{node}/{version}")
        return _quote(node)

    for i, n in enumerate(graph.nodes):
        colour = DOT_COLOURS[n.health]
        label = f"{n.label}\\n{n.namespace}" if n.namespace else n.label
        if n.kind is NodeKind.SERVICE and n.workloads:
            lines.append(f"  subgraph cluster_{i} {{")
            lines.append(f'    label={_quote(n.id)}; color="{colour}"; style=rounded;')
            lines.extend(
                f'    {point(n.id, v)} [label={_quote(v)}, shape=box, color="{colour}"];'
                for v in n.workloads
            )
            if any(e.target == n.id and e.target_version not in n.workloads for e in graph.edges):
                # the service itself: where requests that no workload answered end
                lines.append(f"    {_quote(n.id)} [label={_quote(n.id)}, shape=triangle];")
            lines.append("  }")
        else:
            shape = DOT_SHAPES[n.kind]
            lines.append(f'  {_quote(n.id)} [label="{label}", shape={shape}, color="{colour}"];')
    for e in graph.edges:
        colour = DOT_COLOURS[e.health]
        # Graphviz's fonts often lack the padlock emoji: mutual TLS is spelled out
        lock = {"🔒": "mTLS ", "🔓": "plaintext "}.get(e.padlock, "")
        label = lock + edge_summary(e)
        style = ', style="dashed"' if not e.requests else ""
        lines.append(
            f"  {point(e.source, e.source_version)} -> {point(e.target, e.target_version)}"
            f' [label={_quote(label)}, color="{colour}", fontcolor="{colour}"{style}];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
