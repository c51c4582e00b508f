"""YAML documents with positions: every value keeps the line and column it came from.

PyYAML's ``compose_all`` gives nodes with marks; this module turns them into plain Python values
plus a path -> position table, so diagnostics can point at ``file:line:col`` of any field. It
never raises on bad input: syntax errors, duplicate keys and YAML bombs become diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from mesh.diagnostics import Diagnostic
from mesh.model.common import SourcePosition

__all__ = ["MAX_DEPTH", "MAX_NODES", "RawDocument", "parse_documents"]

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's composer when PyYAML was built with it (about 10x faster), else the pure-Python one."""

MAX_DEPTH = 64
MAX_NODES = 200_000

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class RawDocument:
    """One YAML document: its value, where it starts, and the position of every path in it."""

    data: Any
    origin: SourcePosition
    positions: dict[Path, SourcePosition]
    index: int


class _TooComplexError(Exception):
    pass


class _Converter:
    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[Path, SourcePosition] = {}
        self.diagnostics: list[Diagnostic] = []
        self.nodes = 0
        self._scalars = SafeConstructor()

    def pos(self, node: yaml.Node) -> SourcePosition:
        mark = node.start_mark
        return SourcePosition(self.file, mark.line + 1, mark.column + 1)

    def convert(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES:
            raise _TooComplexError
        self.positions[path] = self.pos(node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        try:
            value = self._scalars.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError):
            value = node.value
        if isinstance(value, bytes | bytearray):
            return node.value
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        self._flatten_merge_keys(node)
        for key_node, value_node in node.value:
            key = self.convert(key_node, (*path, "<key-node>"), depth + 1)
            if isinstance(key, list | dict):
                key = str(key)
            if key in result:
                p = self.pos(key_node)
                self.diagnostics.append(
                    Diagnostic(
                        "MPY1008",
                        f'duplicate key "{key}" (YAML keeps only the last value)',
                        file=p.file,
                        line=p.line,
                        column=p.column,
                        hint="remove one of the two entries",
                    )
                )
            child: Path = (*path, key if isinstance(key, str | int) else str(key))
            self.positions[(*child, "<key>")] = self.pos(key_node)
            result[key] = self.convert(value_node, child, depth + 1)
        self.positions.pop((*path, "<key-node>"), None)
        return result

    @staticmethod
    def _flatten_merge_keys(node: yaml.MappingNode) -> None:
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        rest: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                sources = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                for source in sources:
                    if isinstance(source, yaml.MappingNode):
                        merged.extend(source.value)
            else:
                rest.append((key_node, value_node))
        if merged:
            seen = {k.value for k, _ in rest if isinstance(k, yaml.ScalarNode)}
            node.value = [kv for kv in merged if kv[0].value not in seen] + rest


def parse_documents(text: str, file: str) -> tuple[list[RawDocument], list[Diagnostic]]:
    """Parse every document of a (multi-document) YAML text.

    Returns the documents that parsed (empty ones skipped) and diagnostics for the rest. A syntax
    error stops at the broken document, as ``kubectl apply`` does; the documents before it are kept.
    The fast libyaml composer is used first; on a syntax error the text is parsed again with
    PyYAML's own composer, whose messages are the same on every machine.
    """
    docs, diagnostics = _parse(text, file, _LOADER)
    if _LOADER is not yaml.SafeLoader and any(d.code == "MPY1001" for d in diagnostics):
        docs, diagnostics = _parse(text, file, yaml.SafeLoader)
    return docs, diagnostics


def _parse(text: str, file: str, loader: Any) -> tuple[list[RawDocument], list[Diagnostic]]:
    docs: list[RawDocument] = []
    diagnostics: list[Diagnostic] = []
    index = 0
    try:
        for node in yaml.compose_all(text, Loader=loader):
            index += 1
            conv = _Converter(file)
            try:
                data = conv.convert(node, (), 0)
            except _TooComplexError:
                p = conv.pos(node)
                diagnostics.append(
                    Diagnostic(
                        "MPY1011",
                        f"document {index} nests deeper than {MAX_DEPTH} levels or has more than "
                        f"{MAX_NODES} values (after expanding aliases)",
                        file=p.file,
                        line=p.line,
                        column=p.column,
                        hint="a Kubernetes or Istio resource never needs this; check for recursive aliases",
                    )
                )
                continue
            except RecursionError:
                p = conv.pos(node)
                diagnostics.append(
                    Diagnostic(
                        "MPY1011",
                        f"document {index} is too deeply nested",
                        file=p.file,
                        line=p.line,
                        column=p.column,
                    )
                )
                continue
            diagnostics.extend(conv.diagnostics)
            if data is None:  # an empty document between two "---" separators
                continue
            docs.append(RawDocument(data, conv.pos(node), conv.positions, index))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        problem = exc.problem or exc.context or "invalid YAML"
        hint = "check the indentation and that every ':' is followed by a space"
        if "tab" in problem.lower() or "\t" in text:
            hint = "YAML forbids tabs for indentation; use spaces"
        diagnostics.append(
            Diagnostic(
                "MPY1001",
                f"invalid YAML: {problem}",
                file=file,
                line=line,
                column=column,
                hint=hint,
            )
        )
    except yaml.YAMLError as exc:  # ReaderError: control characters, bad encoding
        position = getattr(exc, "position", None)
        message = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else 0
        diagnostics.append(
            Diagnostic(
                "MPY1001",
                f"invalid YAML: {message}",
                file=file,
                line=line,
                column=1,
                hint="the file contains characters YAML does not allow; is it a text file?",
            )
        )
    except RecursionError:
        diagnostics.append(
            Diagnostic("MPY1011", "the YAML nests too deeply to parse", file=file, line=1, column=1)
        )
    return docs, diagnostics
