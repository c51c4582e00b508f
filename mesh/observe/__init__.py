"""Observability over RequestRecords, the same on every runner.

* :mod:`mesh.observe.istio_metrics`: Istio's standard metrics (``istio_requests_total``, the
  duration and size histograms, the TCP counters) with the labels Istio's stats filter sets,
  counted per reporting proxy, rendered as Prometheus text or timestamped OpenMetrics;
* :mod:`mesh.observe.openmetrics`: a run's records laid out on a time axis as the samples a
  Prometheus scraping every second would have stored (what ``promtool tsdb
  create-blocks-from openmetrics`` turns into a TSDB for the ``sim`` runner);
* :mod:`mesh.observe.query`: PromQL answers, the ``$__range`` placeholder and the per-step
  metrics protocol a lesson's ``promql:`` and ``alert:`` expectations are graded through;
* :mod:`mesh.observe.rules`: Prometheus alerting rules and when an alert fires;
* :mod:`mesh.observe.spans`: Zipkin v2 spans, and spans derived from records with the parent
  links Envoy's tracer gives them; :mod:`mesh.observe.traces`: spans as trees, self time, the
  slowest hop, pieces of one request stitched by timing;
* :mod:`mesh.observe.compare`: one query's answers on two runners, series by series;
* :mod:`mesh.observe.dashboard`: per-service rate, error ratio and latency percentiles over time.

Everything here is pure: processes (Prometheus, promtool, the collector) live in ``cluster``.
"""
