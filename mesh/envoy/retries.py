"""VirtualService ``retries`` -> Envoy's route ``retry_policy``, and Istio's default policy.

A route without ``retries`` gets istiod's default (2 retries on connect-failure, refused-stream,
unavailable, cancelled, retriable-status-codes; 503 retriable only before Istio 1.24; the
previous-hosts predicate unless the cluster hashes consistently); ``attempts: 0`` means none.
"""

from __future__ import annotations

from typing import Any

from mesh.envoy_api import type_urls as tu
from mesh.envoy_api.values import duration
from mesh.model import HTTPRetry

__all__ = ["DEFAULT_RETRY_ON", "default_retry_policy", "retry_policy", "version_at_least"]


DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"


def version_at_least(version: str, major: int, minor: int) -> bool:
    try:
        parts = [int(p) for p in version.split(".")[:2]]
    except ValueError:
        return True
    return (parts[0], parts[1] if len(parts) > 1 else 0) >= (major, minor)


def _previous_hosts() -> list[dict[str, Any]]:
    return [
        {
            "name": tu.RETRY_PREVIOUS_HOSTS,
            "typed_config": tu.typed(tu.PREVIOUS_HOSTS),
        }
    ]


def default_retry_policy(consistent_hash: bool, istio_version: str) -> dict[str, Any]:
    """Istio's outbound default: 2 retries on connect-failure, refused-stream, unavailable,
    cancelled, retriable-status-codes; 503 is retriable only before Istio 1.24."""
    policy: dict[str, Any] = {
        "host_selection_retry_max_attempts": 5,
        "num_retries": 2,
        "retry_on": DEFAULT_RETRY_ON,
    }
    if not version_at_least(istio_version, 1, 24):
        policy["retriable_status_codes"] = [503]
    if not consistent_hash:
        policy["retry_host_predicate"] = _previous_hosts()
    return dict(sorted(policy.items()))


def retry_policy(
    retries: HTTPRetry | None, consistent_hash: bool, istio_version: str
) -> dict[str, Any] | None:
    """VS ``retries`` -> Envoy ``retry_policy``; ``None`` retries = the default policy,
    ``attempts: 0`` (or unset inside a ``retries`` block) = no retry policy."""
    if retries is None:
        return default_retry_policy(consistent_hash, istio_version)
    if not retries.attempts or retries.attempts <= 0:
        return None
    policy: dict[str, Any] = {
        "host_selection_retry_max_attempts": 5,
        "num_retries": retries.attempts,
    }
    if retries.retry_on:
        tokens: list[str] = []
        codes: list[int] = []
        for token in (t.strip() for t in retries.retry_on.split(",")):
            if not token:
                continue
            if token.isdigit() and 100 <= int(token) <= 599:
                codes.append(int(token))
            elif token not in tokens:
                tokens.append(token)
        if codes:
            if "retriable-status-codes" not in tokens:
                tokens.append("retriable-status-codes")
            policy["retriable_status_codes"] = codes
        policy["retry_on"] = ",".join(tokens)
    else:
        policy["retry_on"] = DEFAULT_RETRY_ON
    if retries.per_try_timeout is not None:
        policy["per_try_timeout"] = duration(retries.per_try_timeout)
    if retries.backoff is not None:
        policy["retry_back_off"] = {"base_interval": duration(retries.backoff)}
    if not consistent_hash:
        policy["retry_host_predicate"] = _previous_hosts()
    if retries.retry_remote_localities:
        policy["retry_priority"] = {
            "name": tu.RETRY_PREVIOUS_PRIORITIES,
            "typed_config": tu.typed(tu.PREVIOUS_PRIORITIES, update_frequency=2),
        }
    return dict(sorted(policy.items()))
