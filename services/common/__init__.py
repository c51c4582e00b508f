"""Shared plumbing for the e-commerce services: settings, lesson knobs, trace propagation,
downstream HTTP calls, storage, cache, JSON errors and the server that can refuse connections.

Every service builds its FastAPI app with :func:`services.common.app.create_app`, so all of them
behave alike where a mesh lesson looks: `/healthz`, `/readyz`, `GET/PUT /admin/knobs`, injected
latency and errors, trace headers copied onto every downstream call.
"""
