"""Moved: the names live in :mod:`mesh.envoy_api.names` (a leaf shared with mesh.security).

Kept only so that ``sim`` (``sim/proxy.py``, ``sim/xds.py``) keeps importing while it moves to
``mesh.envoy_api.names``; nothing in mesh/, cluster/, playground/ or tui/ imports it. Delete it
once sim/ no longer does.
"""

from mesh.envoy_api.names import *  # noqa: F403
