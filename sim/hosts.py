"""One upstream host as a client proxy tracks it: requests in flight, and the consecutive
errors and ejections its cluster's outlier detector keeps (:mod:`sim.outlier`)."""

from __future__ import annotations

from dataclasses import dataclass

from sim.xds import EndpointSpec

__all__ = ["HostOutlier", "HostState"]


@dataclass(slots=True, eq=False)
class HostState:
    """One upstream host as this client proxy tracks it."""

    endpoint: EndpointSpec
    active: int = 0
    consecutive_5xx: int = 0
    consecutive_gateway: int = 0
    consecutive_local: int = 0
    ejected: bool = False
    ejected_until: float = 0.0
    """When the ejection's time is served (the host comes back at the next sweep)."""
    ejections: int = 0
    """Envoy's ejection back-off ``k``: the ejection lasts ``base_ejection_time x k``."""
    last_unejection: float | None = None
    """The sweep that brought the host back (None: never ejected)."""
    requests: int = 0
    key: str = ""
    """``address:port`` (the endpoint's ``%UPSTREAM_HOST%``)."""

    def __post_init__(self) -> None:
        self.key = self.endpoint.host

    def outlier(self, at: float) -> HostOutlier:
        """This host's detector state, times relative to ``at``."""
        return HostOutlier(
            self.consecutive_5xx,
            self.consecutive_gateway,
            self.consecutive_local,
            self.ejected,
            self.ejected_until - at,
            self.ejections,
            None if self.last_unejection is None else self.last_unejection - at,
        )


@dataclass(frozen=True, slots=True)
class HostOutlier:
    """One host's outlier-detection state, times relative to the moment it was taken."""

    consecutive_5xx: int
    consecutive_gateway: int
    consecutive_local: int
    ejected: bool
    ejected_until: float
    ejections: int
    last_unejection: float | None
