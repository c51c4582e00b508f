"""JWT verification against the user service's JWKS, fetched once and cached, like Envoy's
`jwt_authn` filter with a remote JWKS (Istio `RequestAuthentication.jwtRules[].jwksUri`)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt

from services.common.downstream import Downstream, json_or_error, raise_for_upstream
from services.common.errors import ServiceError

JWKS_PATH = "/.well-known/jwks.json"
#: An unknown `kid` refetches the JWKS at most this often (key rotation without a restart).
REFETCH_AFTER_S = 60.0


def unauthorized(message: str) -> ServiceError:
    return ServiceError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise unauthorized("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("expected 'Authorization: Bearer <token>'")
    return token.strip()


class JwksVerifier:
    """Verifies RS256 tokens issued by the user service."""

    def __init__(self, downstream: Downstream, issuer: str, audience: str) -> None:
        self._downstream = downstream
        self._issuer = issuer
        self._audience = audience
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def _fetch(self) -> None:
        response = await self._downstream.call("GET", "user", JWKS_PATH)
        raise_for_upstream(response, "user")
        body = json_or_error(response, "user")
        keys: dict[str, Any] = {}
        for jwk in body.get("keys", []) if isinstance(body, dict) else []:
            try:
                keys[str(jwk["kid"])] = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
            except (KeyError, ValueError, jwt.PyJWTError):
                continue
        self._keys = keys
        self._fetched_at = time.monotonic()

    async def _key(self, kid: str) -> Any:
        async with self._lock:
            stale = self._fetched_at is None or (
                kid not in self._keys and time.monotonic() - self._fetched_at > REFETCH_AFTER_S
            )
            if stale:
                await self._fetch()
        key = self._keys.get(kid)
        if key is None:
            raise unauthorized("token signed by an unknown key")
        return key

    async def verify(self, authorization: str | None) -> dict[str, Any]:
        """The token's claims; 401 when it is missing, malformed, expired or forged."""
        token = bearer_token(authorization)
        try:
            kid = str(jwt.get_unverified_header(token).get("kid", ""))
        except jwt.PyJWTError:
            raise unauthorized("malformed token") from None
        key = await self._key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError:
            raise unauthorized("invalid or expired token") from None
        return claims
