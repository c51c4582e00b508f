"""The simpy runner: executes the Envoy config ``mesh.envoy.translate`` emits, offline and seeded."""

from sim.runner import SimRunner

__all__ = ["SimRunner"]
