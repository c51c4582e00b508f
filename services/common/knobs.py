"""Lesson knobs: the faults a lesson can switch on in a running service.

`latency_ms` delays every application request (not `/healthz`, `/readyz` or `/admin/*`) before it
is handled; `error_rate` answers that fraction of application requests with a 500, drawn from a
`random.Random` seeded with `SEED` so a run can be repeated; `drop_trace_headers` makes the service stop copying the trace headers onto its downstream calls
(an app that does not propagate trace context: its sidecar starts a new trace per call); `refuse`
closes the service's
listening socket (new TCP connections get ECONNREFUSED, which an Envoy upstream reports as a 503
with response flag `UF`) and makes `/readyz` answer 503 on connections that are still open.
Knobs start from the environment and can be read and changed live with `GET/PUT /admin/knobs`.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field


class Knobs(BaseModel):
    """The knob values; `PUT /admin/knobs` takes any subset of these fields."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(
        default=0.0, ge=0.0, le=600_000.0, description="Added delay per request"
    )
    error_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Fraction answered with a 500"
    )
    refuse: bool = Field(
        default=False, description="Close the listening socket; /readyz answers 503"
    )
    drop_trace_headers: bool = Field(
        default=False, description="Do not copy the trace headers onto downstream calls"
    )
    decline_rate: float | None = Field(
        default=None, ge=0.0, le=1.0, description="payment only: fraction of new charges declined"
    )


class KnobsUpdate(BaseModel):
    """A partial update of :class:`Knobs`; omitted fields keep their value."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float | None = Field(default=None, ge=0.0, le=600_000.0)
    error_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    refuse: bool | None = None
    drop_trace_headers: bool | None = None
    decline_rate: float | None = Field(default=None, ge=0.0, le=1.0)


class KnobState:
    """The live knobs of one service process, with the seeded random source for faults."""

    def __init__(self, knobs: Knobs, seed: int) -> None:
        self._knobs = knobs
        self._lock = threading.Lock()
        self.rng = random.Random(seed)
        self._listeners: list[Callable[[Knobs], None]] = []

    @property
    def current(self) -> Knobs:
        return self._knobs

    def on_change(self, listener: Callable[[Knobs], None]) -> None:
        """Call `listener` with the new knobs after every update (the server uses it for refuse)."""
        self._listeners.append(listener)

    def update(self, change: KnobsUpdate) -> Knobs:
        with self._lock:
            fields = change.model_dump(exclude_unset=True)
            if self._knobs.decline_rate is None:
                fields.pop("decline_rate", None)  # a knob this service does not have
            self._knobs = self._knobs.model_copy(update=fields)
            knobs = self._knobs
        for listener in self._listeners:
            listener(knobs)
        return knobs

    def draw_error(self) -> bool:
        """True when this request should be answered with an injected 500."""
        rate = self._knobs.error_rate
        if rate <= 0.0:
            return False
        with self._lock:
            return self.rng.random() < rate

    def draw(self, rate: float) -> bool:
        """True with probability `rate`, from the same seeded source."""
        if rate <= 0.0:
            return False
        with self._lock:
            return self.rng.random() < rate
