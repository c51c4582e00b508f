"""The user service's token issuer as the simulator plays it: a fixed RS256 key pair, its public
JWKS, and tokens minted for a user (``${jwt:EMAIL}`` in a lesson's request headers).

The real user service signs RS256 tokens with its own key and publishes the public half at
``/.well-known/jwks.json``; a RequestAuthentication names that ``jwksUri``. The simulator has no
user-service process, so it carries one fixed, **test-only** 2048-bit key (never used for
anything but simulated tokens) and answers that ``jwksUri`` with its public JWKS. Claims follow
docs/security.md: ``iss`` ``http://user.<namespace>.svc.cluster.local``, ``aud`` ``shop``,
``sub`` a stable id derived from the e-mail, ``email``, ``iat`` and ``exp`` one hour later, on
the simulator's wall clock (:data:`SIM_EPOCH` + simulated seconds).

Signing is PKCS#1 v1.5 over SHA-256 with the standard library (CRT exponentiation), so ``sim``
needs no crypto package; ``mesh.security.jwt_verify.rs256_verifier`` checks these tokens exactly
as Envoy would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "JWT_PLACEHOLDER",
    "SIM_EPOCH",
    "TOKEN_LIFETIME_S",
    "UserTokens",
]

SIM_EPOCH = 1_767_225_600.0
"""The simulator's wall clock at simulated t = 0 (2026-01-01T00:00:00Z): what JWT ``iat``/``exp``
are compared with."""

TOKEN_LIFETIME_S = 3600
JWT_PLACEHOLDER = re.compile(r"\$\{jwt:([^}]+)\}")
"""``${jwt:EMAIL}`` in a request header value: a token the user service issued to EMAIL."""

_KID = "meshplay-sim"
_E = 65537
_N = int(
    "a9effaa9f762e2e66cacefae96a489e041b347bdc47ba6413aefd5255c669e1af87731463cd0b686750c5195"
    "8c83c457396489251210587ee4891ddc031489f9272eb8b0ea8eb86a32cbb302bf29aa5ba7e777b5df121f11"
    "88140ad8a391ddf849ff7f334e1e18f4bd165941a0b492d97c4c7e986cfdb422a40bf63985b01ae4b207d810"
    "7050a2b8600c354d23eb5289e675e238d2c899b8f5560769ba9c5d5a87c5b3f48b819e4ac76bf7949d71be09"
    "8fc9004bbd86a83d3d14acca9ab38009b6e2c14c0ce9b6ad9091b69ce02ebbf4da328e708aa7dc6b665421a3"
    "f99da99798bace15133b377e552ffba0061350b8593d1254539f4af88269aef3ffc517df",
    16,
)
_P = int(
    "e305b56a0ed303e4ea9a2c6108ca1c08b8bac54274476c6baf3206fc2e0f9bd81ec2edea19233419beb06aae"
    "3d221917f7cce2d3b3d47a65462621376f9784bc5e067ea9dbfb00c85d573dec697b6322c60048cb4a7fe1de"
    "35170449d62f646912a7de94840b96b29032390fec5dda9fe1b500763623fdabb7b4e331e321e4b5",
    16,
)
_Q = int(
    "bfa0efe62db8011e3e2c46c7460ab17346b0c9b20e9ccb57a49c9f9a11b8a45332feb28857dc92d33f0900a8"
    "79c6f944e962a75d5a787093f1829240d643ab52ce576198821dd326fd29436a075be8dc1396935045ed3764"
    "2e8c54263c567c0d4417637d4e5286bbd70824cf9063c09a6c81ccda88f560a15f85684c86439ac3",
    16,
)
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(n: int) -> str:
    return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def _sign(message: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2), private key via the CRT."""
    size = (_N.bit_length() + 7) // 8
    t = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    em = b"\x00\x01" + b"\xff" * (size - len(t) - 3) + b"\x00" + t
    m = int.from_bytes(em, "big")
    d = pow(_E, -1, (_P - 1) * (_Q - 1))
    s1 = pow(m, d % (_P - 1), _P)
    s2 = pow(m, d % (_Q - 1), _Q)
    h = (pow(_Q, -1, _P) * (s1 - s2)) % _P
    return (s2 + h * _Q).to_bytes(size, "big")


class UserTokens:
    """The user service of one namespace as a token issuer (tokens cached per e-mail)."""

    def __init__(self, namespace: str, *, service: str = "user", audience: str = "shop") -> None:
        self.host = f"{service}.{namespace}.svc.cluster.local"
        self.issuer = f"http://{self.host}"
        self.audience = audience
        self._tokens: dict[str, str] = {}

    @staticmethod
    def jwks() -> str:
        """The public JWKS the user service publishes (``/.well-known/jwks.json``)."""
        key = {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": _KID}
        key |= {"n": _int_b64(_N), "e": _int_b64(_E)}
        return json.dumps({"keys": [key]}, separators=(",", ":"))

    def resolve_jwks(self, uri: str) -> str | None:
        """A ``jwksUri`` -> the JWKS, for URIs served by the user service (any form of its
        host name); None for any other issuer (Envoy would have to fetch it)."""
        host = urlsplit(uri).hostname or ""
        short = self.host.removesuffix(".svc.cluster.local")
        if host in (self.host, short, f"{short}.svc", short.split(".")[0]):
            return self.jwks()
        return None

    def claims(self, email: str) -> dict[str, Any]:
        """The claims of the token the user service issues to ``email``."""
        return {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": hashlib.sha256(email.encode()).hexdigest()[:32],
            "email": email,
            "iat": int(SIM_EPOCH),
            "exp": int(SIM_EPOCH) + TOKEN_LIFETIME_S,
        }

    @staticmethod
    def mint(claims: Mapping[str, Any]) -> str:
        """An RS256 token with ``claims``, signed with the user service's key."""
        header = {"alg": "RS256", "kid": _KID, "typ": "JWT"}
        signing_input = (
            _b64(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64(json.dumps(dict(claims), separators=(",", ":")).encode())
        )
        return signing_input + "." + _b64(_sign(signing_input.encode()))

    def token(self, email: str) -> str:
        """An RS256 token for ``email``, valid for an hour from :data:`SIM_EPOCH`."""
        found = self._tokens.get(email)
        if found is None:
            found = self._tokens[email] = self.mint(self.claims(email))
        return found

    def fill(self, value: str) -> str:
        """A header value with every ``${jwt:EMAIL}`` replaced by that user's token."""
        if "${jwt:" not in value:
            return value
        return JWT_PLACEHOLDER.sub(lambda m: self.token(m.group(1).strip()), value)
