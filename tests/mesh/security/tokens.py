"""RS256 tokens like the ``user`` service issues (PyJWT + cryptography), for the tests only."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "http://user.shop.svc.cluster.local"
AUDIENCE = "shop"


class Signer:
    """One RSA key, its JWKS, and tokens signed with it."""

    def __init__(self, kid: str = "k1") -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def jwks(self) -> str:
        """The public key as a JWKS document (what ``/.well-known/jwks.json`` serves)."""
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "alg": "RS256", "use": "sig"})
        return json.dumps({"keys": [jwk]})

    def token(self, sub: str = "alice", ttl: float = 3600, **claims: Any) -> str:
        """A token for ``sub``; ``ttl`` < 0 makes it expired; claims override the defaults."""
        now = int(time.time())
        body: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now}
        body["exp"] = now + int(ttl)
        body.update(claims)
        return jwt.encode(body, self.pem, algorithm="RS256", headers={"kid": self.kid})
