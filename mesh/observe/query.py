"""PromQL answers and the per-step metrics a lesson's ``promql:`` and ``alert:`` expectations read.

PromQL is evaluated by a real Prometheus on every runner (``local``: the one scraping the
mesh; ``sim``: one serving a TSDB built from the run's records; ``kube``: the cluster's). This
module holds what does not depend on where it runs:

* :class:`QueryResult`: an answer as Prometheus' HTTP API gives it (vector, scalar, matrix);
* :func:`substitute`: ``$__range`` in a query stands for the step's graded window (Grafana's
  name for the same idea), so one query means "during this step" on every runner, whatever
  the step lasted there;
* :class:`StepMetrics`: what the grading of one step may ask, and :class:`MetricsExecutor`,
  the optional capability of an executor to answer it (see :mod:`mesh.engine`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from mesh.observe.istio_metrics import FAMILIES, Labels

__all__ = [
    "RANGE_PLACEHOLDER",
    "MetricsExecutor",
    "QueryError",
    "QueryResult",
    "Sample",
    "StepMetrics",
    "describe_samples",
    "families_read",
    "format_duration",
    "parse_duration",
    "result_from_api",
    "substitute",
]

RANGE_PLACEHOLDER = "$__range"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_SUFFIXES = ("", "_bucket", "_sum", "_count")


def families_read(expr: str) -> frozenset[str] | None:
    """The Istio metric families (:data:`~mesh.observe.istio_metrics.FAMILIES`) a PromQL
    expression reads, by the metric names its selectors spell (``istio_request_duration_
    milliseconds_bucket`` reads the ``istio_request_duration_milliseconds`` family); ``None``
    when it may read any: a selector without a metric name (``{job="istio-proxy"}``), a
    ``__name__`` matcher, or no Istio metric named at all."""
    text = _STRING.sub('""', expr)
    if "__name__" in text:
        return None
    for brace in re.finditer(r"\{", text):
        before = text[: brace.start()].rstrip()
        if not before or not (before[-1].isalnum() or before[-1] in "_:"):
            return None
    idents = set(_IDENT.findall(text))
    found = frozenset(
        f.name for f in FAMILIES if any(f.name + suffix in idents for suffix in _SUFFIXES)
    )
    return found or None


class QueryError(Exception):
    """Prometheus refused a query (bad PromQL) or could not be asked."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One element of an instant vector (or a scalar, with no labels)."""

    labels: Labels
    value: float

    def label(self, name: str) -> str:
        """The value of one label ("" when absent)."""
        return next((v for k, v in self.labels if k == name), "")


@dataclass(frozen=True, slots=True)
class QueryResult:
    """An instant query's answer: ``vector`` (samples), ``scalar`` (one unlabelled sample) or
    ``string``; ``matrix`` answers keep each series' last value."""

    result_type: str
    samples: tuple[Sample, ...]
    raw: Mapping[str, Any]
    """The API's ``data`` object, for ``-o json``."""

    def single(self) -> float:
        """The one number this answer is, NaN when it is empty or has several series."""
        if len(self.samples) != 1:
            return math.nan
        return self.samples[0].value

    def by(self, label: str) -> dict[str, float]:
        """``{label value: sample value}`` (samples without the label under "")."""
        return {s.label(label): s.value for s in self.samples}


def _number(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def result_from_api(data: Mapping[str, Any]) -> QueryResult:
    """The ``data`` object of ``/api/v1/query`` as a :class:`QueryResult`."""
    kind = str(data.get("resultType", ""))
    result = data.get("result")
    samples: list[Sample] = []
    if kind in ("scalar", "string") and isinstance(result, list) and len(result) == 2:
        samples.append(Sample((), _number(result[1])))
    elif isinstance(result, list):
        for item in result:
            metric = item.get("metric", {})
            labels = tuple(sorted((str(k), str(v)) for k, v in metric.items()))
            if "value" in item:
                samples.append(Sample(labels, _number(item["value"][1])))
            elif item.get("values"):
                samples.append(Sample(labels, _number(item["values"][-1][1])))
    samples.sort(key=lambda s: s.labels)
    return QueryResult(kind, tuple(samples), data)


_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 31536000.0,
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def parse_duration(text: str) -> float:
    """A Prometheus duration (``30s``, ``5m``, ``1m30s``, ``250ms``) in seconds."""
    text = text.strip()
    if not text:
        raise ValueError("empty duration")
    pos = 0
    total = 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise ValueError(f'"{text}" is not a duration (like 30s, 5m, 1m30s)')
    return total


def format_duration(seconds: float) -> str:
    """Seconds as a PromQL duration: whole seconds as ``12s``, else milliseconds."""
    ms = max(1, round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def substitute(expr: str, range_s: float) -> str:
    """``expr`` with ``$__range`` replaced by the step's window as a PromQL duration."""
    return expr.replace(RANGE_PLACEHOLDER, format_duration(range_s))


@runtime_checkable
class StepMetrics(Protocol):
    """The metrics of one step of a run, on whichever runner produced them.

    ``query`` evaluates at the end of the step's graded window, with ``$__range`` standing for
    that window; ``query_range`` evaluates at every ``step_s`` over the last ``span_s`` seconds
    of it (how alerts with a ``for`` duration are judged).
    """

    @property
    def range_s(self) -> float:
        """The step's graded window in seconds (what ``$__range`` stands for)."""
        ...

    def query(self, expr: str) -> QueryResult:
        """An instant query at the end of the step."""
        ...

    def query_range(
        self, expr: str, span_s: float, step_s: float
    ) -> dict[Labels, list[tuple[float, float]]]:
        """Series -> (time, value) points over the last ``span_s`` seconds of the step."""
        ...


@runtime_checkable
class MetricsExecutor(Protocol):
    """An executor whose runs can answer PromQL (the optional capability the engine asks)."""

    def step_metrics(
        self, index: int, started_at: float, duration_s: float, warmup_s: float
    ) -> StepMetrics | None:
        """The metrics of the step just driven: ``started_at`` and ``duration_s`` as in its
        :class:`~mesh.runner.StepTraffic`, ``warmup_s`` the part not graded. None when this
        run has no metrics (then ``promql:`` and ``alert:`` expectations have no data)."""
        ...


def describe_samples(samples: Sequence[Sample]) -> str:
    """``{destination_version="v1"} 3`` lines for a short report."""
    lines = []
    for s in samples:
        labels = ",".join(f'{k}="{v}"' for k, v in s.labels)
        lines.append(f"{{{labels}}} {s.value:g}")
    return "\n".join(lines)
