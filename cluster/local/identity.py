"""End-user identity on the local mesh: JWKS for RequestAuthentication and real JWTs for lessons.

istiod fetches each RequestAuthentication ``jwksUri`` itself and inlines the keys into the
sidecars' ``jwt_authn`` filter (``local_jwks``). :class:`Identity` does the same against the
running services: ``http://user.shop.svc.cluster.local:8080/.well-known/jwks.json`` is read
from a replica of ``user`` on its allocated port. Lessons write ``${jwt:alice@shop.example}``
in a request header for "a valid token of this user"; it becomes a token the real user service
issued (the user is registered on first use, then logged in).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mesh.lesson import TrafficSpec
from mesh.model import FrozenMap
from mesh.runner import RunnerError

if TYPE_CHECKING:
    from cluster.local.mesh import LocalMesh

__all__ = ["Identity"]

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_TOKEN = re.compile(r"\$\{jwt:([^}]+)\}")
PASSWORD = "meshplay-local-password"
"""Password of the users the runner registers for ``${jwt:...}`` (a local demo only)."""


class Identity:
    """JWKS and tokens from the mesh's own services (cached per run)."""

    def __init__(self, mesh: LocalMesh, token_service: str = "user") -> None:
        self.mesh = mesh
        self.token_service = token_service
        self._jwks: dict[str, str | None] = {}
        self._tokens: dict[str, str] = {}

    def _app_url(self, host: str) -> str | None:
        """``http://127.0.0.1:<app port>`` of a running replica of the service named by
        ``host`` (``user``, ``user.shop``, ``user.shop.svc.cluster.local``)."""
        name, _, rest = host.partition(".")
        namespace = rest.split(".", 1)[0] if rest else ""
        for pp in self.mesh.pods.values():
            if pp.dead or not pp.app or not pp.ports.app:
                continue
            if pp.pod.labels.get("app") == name and namespace in ("", pp.pod.namespace):
                return f"http://127.0.0.1:{next(iter(pp.ports.app.values()))}"
        return None

    def _call(self, url: str, body: dict[str, Any] | None = None) -> tuple[int, str]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
        if data is not None:
            req.add_header("content-type", "application/json")
        try:
            with _OPENER.open(req, timeout=10.0) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode(errors="replace")
        except (urllib.error.URLError, OSError) as exc:
            return 0, str(exc)

    def jwks(self, uri: str) -> str | None:
        """The JWKS JSON behind ``uri``, fetched from the service it names (None if unknown)."""
        if uri not in self._jwks:
            parsed = urllib.parse.urlsplit(uri)
            base = self._app_url(parsed.hostname or "")
            text: str | None = None
            if base is not None:
                status, body = self._call(base + (parsed.path or "/"))
                text = body if status == 200 else None
            self._jwks[uri] = text
        return self._jwks[uri]

    def token(self, email: str) -> str:
        """A JWT the real token service issued for ``email``."""
        if email in self._tokens:
            return self._tokens[email]
        base = self._app_url(self.token_service)
        if base is None:
            raise RunnerError(f"${{jwt:{email}}}: no running {self.token_service} service")
        user = {"email": email, "password": PASSWORD, "name": email.split("@", 1)[0]}
        status, body = self._call(base + "/users", user)
        if status not in (201, 409):
            raise RunnerError(f"cannot register {email} with {self.token_service}: {status} {body}")
        status, body = self._call(base + "/login", {"email": email, "password": PASSWORD})
        if status != 200:
            raise RunnerError(f"cannot log in {email} with {self.token_service}: {status} {body}")
        token = str(json.loads(body)["access_token"])
        self._tokens[email] = token
        return token

    def expand(self, spec: TrafficSpec) -> TrafficSpec:
        """``spec`` with every ``${jwt:EMAIL}`` in a header value replaced by a real token."""
        if not any(_TOKEN.search(v) for r in spec.requests for v in r.headers.values()):
            return spec
        requests = tuple(
            replace(
                r,
                headers=FrozenMap(
                    {
                        k: _TOKEN.sub(lambda m: self.token(m.group(1)), v)
                        for k, v in r.headers.items()
                    }
                ),
            )
            for r in spec.requests
        )
        return replace(spec, requests=requests)
