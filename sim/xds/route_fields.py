"""The fields of Envoy's v3 route messages, so that a route configuration with a field Envoy
does not know (a typo, a v2 name such as ``host_rewrite``) is refused as Envoy refuses it
(``MPY1101``) instead of being silently ignored. Field names are the proto (snake_case) names:
:func:`sim.protojson.canonical` has already mapped the JSON spellings onto them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

__all__ = ["FIELDS", "unknown_fields"]

FIELDS: dict[str, frozenset[str]] = {
    "RouteConfiguration": frozenset({
        "name", "virtual_hosts", "vhds", "internal_only_headers", "response_headers_to_add",
        "response_headers_to_remove", "request_headers_to_add", "request_headers_to_remove",
        "most_specific_header_mutations_wins", "validate_clusters",
        "max_direct_response_body_size_bytes", "cluster_specifier_plugins",
        "request_mirror_policies", "ignore_port_in_host_matching",
        "ignore_path_parameters_in_path_matching", "typed_per_filter_config", "metadata",
    }),
    "VirtualHost": frozenset({
        "name", "domains", "routes", "matcher", "require_tls", "virtual_clusters", "rate_limits",
        "request_headers_to_add", "request_headers_to_remove", "response_headers_to_add",
        "response_headers_to_remove", "cors", "typed_per_filter_config",
        "include_request_attempt_count", "include_attempt_count_in_response", "retry_policy",
        "retry_policy_typed_config", "hedge_policy", "include_is_timeout_retry_header",
        "per_request_buffer_limit_bytes", "request_body_buffer_limit", "request_mirror_policies",
        "metadata",
    }),
    "Route": frozenset({
        "name", "match", "route", "redirect", "direct_response", "filter_action",
        "non_forwarding_action", "metadata", "decorator", "typed_per_filter_config",
        "request_headers_to_add", "request_headers_to_remove", "response_headers_to_add",
        "response_headers_to_remove", "tracing", "per_request_buffer_limit_bytes",
        "request_body_buffer_limit", "stat_prefix",
    }),
    "RouteMatch": frozenset({
        "prefix", "path", "safe_regex", "connect_matcher", "path_separated_prefix",
        "path_match_policy", "case_sensitive", "runtime_fraction", "headers", "query_parameters",
        "cookies", "grpc", "tls_context", "dynamic_metadata", "filter_state",
    }),
    "RouteAction": frozenset({
        "cluster", "cluster_header", "weighted_clusters", "cluster_specifier_plugin",
        "inline_cluster_specifier_plugin", "cluster_not_found_response_code", "metadata_match",
        "prefix_rewrite", "regex_rewrite", "path_rewrite_policy", "host_rewrite_literal",
        "auto_host_rewrite", "host_rewrite_header", "host_rewrite_path_regex",
        "append_x_forwarded_host", "timeout", "idle_timeout", "flush_timeout", "early_data_policy",
        "retry_policy", "retry_policy_typed_config", "request_mirror_policies", "priority",
        "rate_limits", "include_vh_rate_limits", "hash_policy", "cors", "max_grpc_timeout",
        "grpc_timeout_offset", "upgrade_configs", "internal_redirect_policy",
        "internal_redirect_action", "max_internal_redirects", "hedge_policy",
        "max_stream_duration",
    }),
    "RedirectAction": frozenset({
        "https_redirect", "scheme_redirect", "host_redirect", "port_redirect", "path_redirect",
        "prefix_rewrite", "regex_rewrite", "response_code", "strip_query",
    }),
    "DirectResponseAction": frozenset({"status", "body", "body_format"}),
}  # fmt: skip


_RENAMED = {
    "host_rewrite": "host_rewrite_literal",
    "regex": "safe_regex",
    "use_websocket": "upgrade_configs",
    "per_filter_config": "typed_per_filter_config",
}
"""v2 names Envoy v3 no longer accepts, and what replaced them."""


def unknown_fields(message: str, item: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, "did you mean" hint or "") for every key of ``item`` that ``message`` lacks."""
    known = FIELDS[message]
    out: list[tuple[str, str]] = []
    for key in item:
        if key not in known:
            renamed = _RENAMED.get(str(key))
            close = (
                [renamed]
                if renamed in known
                else difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
            )
            out.append((str(key), f'did you mean "{close[0]}"?' if close else ""))
    return out
