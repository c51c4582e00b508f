"""The app model: Kubernetes manifests plus one behaviour declaration (``behavior.yaml``).

The manifests say *what runs* (Deployments, Services, ServiceAccounts); every runner reads them.
The behaviour declaration says *what each endpoint does*: how long the app itself works on a
request, how often it fails on its own, what it answers (status, size), which downstream calls
it makes (in order or in parallel) and how it makes them (its own timeout and retries, which
headers it forwards, what it does when a call fails: pass the error on or degrade). The
simulator executes this declaration; on ``local`` an app without code of its own runs as the
generic behaviour server (``services.behavior_server``) executing the same declaration.

:mod:`mesh.app.model` holds the values, :mod:`mesh.app.load` reads and checks the file.
"""

from mesh.app.load import load_app, load_behavior
from mesh.app.model import (
    TRACE_HEADERS,
    App,
    AppBehavior,
    Call,
    CallStep,
    EndpointBehavior,
    LatencyModel,
    NetworkBehavior,
    OnError,
    Parallel,
    ResponseSpec,
    ServiceBehavior,
    SessionHeader,
    VersionBehavior,
)

__all__ = [
    "TRACE_HEADERS",
    "App",
    "AppBehavior",
    "Call",
    "CallStep",
    "EndpointBehavior",
    "LatencyModel",
    "NetworkBehavior",
    "OnError",
    "Parallel",
    "ResponseSpec",
    "ServiceBehavior",
    "SessionHeader",
    "VersionBehavior",
    "load_app",
    "load_behavior",
]
