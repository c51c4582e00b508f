"""Envoy's vocabulary, shared by the translator and the security builders: a leaf package.

* :mod:`mesh.envoy_api.names` - object names exactly as istiod emits them (clusters, listeners,
  filter chains, route configurations, virtual hosts, SNI, stat prefixes) with the tested inverse
  ``parse_cluster_name``;
* :mod:`mesh.envoy_api.type_urls` - every ``@type`` and Envoy extension name;
* :mod:`mesh.envoy_api.values` - encoders of Envoy's JSON values (durations, percentages, string
  matchers, socket addresses, the ADS config source).

It depends on :mod:`mesh.model` only. :mod:`mesh.security` builds filters with it and
:mod:`mesh.envoy` (the translator) composes those with its own, so nothing here may import either
(an import-linter contract in ``pyproject.toml`` holds the layers).
"""
