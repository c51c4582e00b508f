"""What Envoy's jwt_authn filter decides for one request (``jwt_authn/authenticator.cc`` and
``jwt_verify_lib``), evaluated over the filter config :mod:`mesh.security.jwt` emitted.

The split between pure decision and cryptography: :func:`inspect_token` parses a token and asks
a :data:`Verifier` ``(token, jwks_json) -> SignatureCheck`` about its signature; everything else
(issuer, time window with Envoy's 60 s clock skew, audiences, which status and body) is decided
here. :func:`rs256_verifier` is a small standard-library RS256 (PKCS#1 v1.5, SHA-256) verifier,
enough for the tokens the e-commerce ``user`` service issues; a runner may plug any other
verifier (for example one built on PyJWT, which the services use) with the same signature.

Envoy checks a present token in this order, and the first failure decides: format and JSON
(``Jwt is not in the form of Header.Payload.Signature...``, ``Jwt header is an invalid JSON``),
issuer (``Jwt issuer is not configured``), time (``Jwt not yet valid``, ``Jwt is expired``),
audience (``Audiences in Jwt are not allowed``, the only 403), then key and signature
(``Jwks doesn't have key to match kid or alg from Jwt``, ``Jwt verification fails``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

from mesh.envoy_api.type_urls import FILTER_JWT_AUTHN
from mesh.model import FrozenMap

__all__ = [
    "CLOCK_SKEW_S",
    "JwtOutcome",
    "JwtStatus",
    "SignatureCheck",
    "TokenCheck",
    "Verifier",
    "authenticate",
    "inspect_token",
    "rs256_verifier",
]

CLOCK_SKEW_S = 60.0
"""Envoy's default ``clock_skew_seconds``: exp/nbf are checked with this much slack."""


class JwtStatus(StrEnum):
    """jwt_verify_lib statuses, valued by the body Envoy sends back."""

    OK = "OK"
    MISSING = "Jwt is missing"
    BAD_FORMAT = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
    HEADER_BAD_BASE64 = "Jwt header is an invalid Base64url encoded"
    HEADER_BAD_JSON = "Jwt header is an invalid JSON"
    PAYLOAD_BAD_BASE64 = "Jwt payload is an invalid Base64url encoded"
    PAYLOAD_BAD_JSON = "Jwt payload is an invalid JSON"
    SIGNATURE_BAD_BASE64 = "Jwt signature is an invalid Base64url encoded"
    UNKNOWN_ISSUER = "Jwt issuer is not configured"
    NOT_YET_VALID = "Jwt not yet valid"
    EXPIRED = "Jwt is expired"
    AUDIENCE_NOT_ALLOWED = "Audiences in Jwt are not allowed"
    KID_ALG_MISMATCH = "Jwks doesn't have key to match kid or alg from Jwt"
    VERIFICATION_FAIL = "Jwt verification fails"

    @property
    def http_status(self) -> int:
        """200 for OK, 403 for a wrong audience, 401 otherwise."""
        if self is JwtStatus.OK:
            return 200
        return 403 if self is JwtStatus.AUDIENCE_NOT_ALLOWED else 401


class SignatureCheck(StrEnum):
    """What a verifier says about a token's signature against a JWKS."""

    VALID = "VALID"
    NO_MATCHING_KEY = "NO_MATCHING_KEY"
    INVALID = "INVALID"


Verifier = Callable[[str, str], SignatureCheck]
"""``(token, jwks_json) -> SignatureCheck``: the only cryptographic step."""


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """A parsed token and the verdict on its signature (``format_error`` when unparseable)."""

    format_error: JwtStatus | None = None
    issuer: str = ""
    subject: str = ""
    audiences: tuple[str, ...] = ()
    expires_at: float | None = None
    not_before: float | None = None
    signature: SignatureCheck = SignatureCheck.INVALID
    payload: Mapping[str, Any] = field(default_factory=FrozenMap)
    payload_b64: str = ""


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _split(token: str) -> tuple[list[str], JwtStatus | None]:
    parts = token.split(".")
    if len(parts) != 3:
        return parts, JwtStatus.BAD_FORMAT
    return parts, None


def _decode_json(text: str, bad64: JwtStatus, badjson: JwtStatus) -> tuple[Any, JwtStatus | None]:
    try:
        raw = _b64decode(text)
    except (binascii.Error, ValueError):
        return None, bad64
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None, badjson
    if not isinstance(value, dict):
        return None, badjson
    return value, None


def _int(n: str) -> int:
    return int.from_bytes(_b64decode(n), "big")


_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def rs256_verifier(token: str, jwks_json: str) -> SignatureCheck:
    """RS256 signature check with the standard library (RSASSA-PKCS1-v1_5 + SHA-256)."""
    parts, error = _split(token)
    if error is not None:
        return SignatureCheck.INVALID
    header, err = _decode_json(parts[0], JwtStatus.HEADER_BAD_BASE64, JwtStatus.HEADER_BAD_JSON)
    if err is not None or header.get("alg") != "RS256":
        return SignatureCheck.NO_MATCHING_KEY
    try:
        keys = [k for k in json.loads(jwks_json).get("keys", []) if k.get("kty") == "RSA"]
    except (ValueError, AttributeError):
        return SignatureCheck.NO_MATCHING_KEY
    kid = header.get("kid")
    candidates = [
        k for k in keys if (kid is None or k.get("kid") == kid) and k.get("alg", "RS256") == "RS256"
    ]
    if not candidates:
        return SignatureCheck.NO_MATCHING_KEY
    try:
        signature = int.from_bytes(_b64decode(parts[2]), "big")
    except (binascii.Error, ValueError):
        return SignatureCheck.INVALID
    digest = hashlib.sha256(f"{parts[0]}.{parts[1]}".encode()).digest()
    for key in candidates:
        n, e = _int(key["n"]), _int(key["e"])
        size = (n.bit_length() + 7) // 8
        if signature >= n:
            continue
        em = pow(signature, e, n).to_bytes(size, "big")
        expected_tail = _SHA256_DIGEST_INFO + digest
        padding = size - len(expected_tail) - 3
        if padding >= 8 and em == b"\x00\x01" + b"\xff" * padding + b"\x00" + expected_tail:
            return SignatureCheck.VALID
    return SignatureCheck.INVALID


def inspect_token(token: str, jwks_json: str, verifier: Verifier = rs256_verifier) -> TokenCheck:
    """Parse ``token`` and check its signature with ``verifier``."""
    parts, error = _split(token)
    if error is not None:
        return TokenCheck(format_error=error)
    _, err = _decode_json(parts[0], JwtStatus.HEADER_BAD_BASE64, JwtStatus.HEADER_BAD_JSON)
    if err is not None:
        return TokenCheck(format_error=err)
    payload, err = _decode_json(parts[1], JwtStatus.PAYLOAD_BAD_BASE64, JwtStatus.PAYLOAD_BAD_JSON)
    if err is not None:
        return TokenCheck(format_error=err)
    try:
        _b64decode(parts[2])
    except (binascii.Error, ValueError):
        return TokenCheck(format_error=JwtStatus.SIGNATURE_BAD_BASE64)
    aud = payload.get("aud", ())
    audiences = (aud,) if isinstance(aud, str) else tuple(str(a) for a in aud)
    exp, nbf = payload.get("exp"), payload.get("nbf")
    return TokenCheck(
        issuer=str(payload.get("iss", "")),
        subject=str(payload.get("sub", "")),
        audiences=audiences,
        expires_at=float(exp) if isinstance(exp, int | float) else None,
        not_before=float(nbf) if isinstance(nbf, int | float) else None,
        signature=verifier(token, jwks_json),
        payload=payload,
        payload_b64=parts[1],
    )


def _status(check: TokenCheck, provider: Mapping[str, Any], now: float) -> JwtStatus:
    if check.format_error is not None:
        return check.format_error
    if provider.get("issuer") and check.issuer != provider["issuer"]:
        return JwtStatus.UNKNOWN_ISSUER
    if check.not_before is not None and now + CLOCK_SKEW_S < check.not_before:
        return JwtStatus.NOT_YET_VALID
    if check.expires_at is not None and now > check.expires_at + CLOCK_SKEW_S:
        return JwtStatus.EXPIRED
    allowed = provider.get("audiences") or []
    if allowed and not set(allowed) & set(check.audiences):
        return JwtStatus.AUDIENCE_NOT_ALLOWED
    if check.signature is SignatureCheck.NO_MATCHING_KEY:
        return JwtStatus.KID_ALG_MISMATCH
    if check.signature is not SignatureCheck.VALID:
        return JwtStatus.VERIFICATION_FAIL
    return JwtStatus.OK


@dataclass(frozen=True, slots=True)
class JwtOutcome:
    """The jwt_authn filter's verdict on one request.

    On success ``payload`` is the verified payload (None when there was no token),
    ``set_headers``/``remove_headers`` are the request mutations (payload header, claim headers,
    the stripped token header) and :attr:`metadata` is what RBAC can then match.
    """

    status: JwtStatus
    provider: str = ""
    payload: Mapping[str, Any] | None = None
    set_headers: Mapping[str, str] = field(default_factory=FrozenMap)
    remove_headers: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        """Whether the request goes on to the next filter."""
        return self.status is JwtStatus.OK

    @property
    def http_status(self) -> int:
        """200, 401 or 403."""
        return self.status.http_status

    @property
    def body(self) -> str:
        """The local reply body of a rejection."""
        return "" if self.allowed else self.status.value

    @property
    def details(self) -> str:
        """``%RESPONSE_CODE_DETAILS%`` of a rejection (``jwt_authn_access_denied{Jwt_is_expired}``)."""
        return (
            ""
            if self.allowed
            else "jwt_authn_access_denied{" + self.status.value.replace(" ", "_") + "}"
        )

    @property
    def request_principal(self) -> str:
        """``iss/sub`` of the verified token ("" without one)."""
        if not self.payload:
            return ""
        return f"{self.payload.get('iss', '')}/{self.payload.get('sub', '')}"

    @property
    def metadata(self) -> dict[str, dict[str, Any]]:
        """Dynamic metadata for :class:`mesh.security.rbac_eval.RequestContext`."""
        if self.payload is None:
            return {}
        return {FILTER_JWT_AUTHN: {"payload": dict(self.payload)}}


def _token_at(
    provider: Mapping[str, Any], headers: Mapping[str, str], query: Mapping[str, str]
) -> tuple[str, str] | None:
    """(token, header it came from or "") at the provider's locations, Envoy's defaults when
    none are configured."""
    locations = provider.get("from_headers")
    params = provider.get("from_params")
    if not locations and not params and not provider.get("from_cookies"):
        locations, params = [{"name": "Authorization", "value_prefix": "Bearer "}], ["access_token"]
    for loc in locations or ():
        value = headers.get(str(loc["name"]).lower())
        if value is None:
            continue
        prefix = str(loc.get("value_prefix", ""))
        if prefix:
            at = value.find(prefix)
            if at < 0:
                continue
            value = value[at + len(prefix) :]
            value = value.split(",", 1)[0].split(" ", 1)[0]
        if value:
            return value.strip(), str(loc["name"]).lower()
    for name in params or ():
        if query.get(name):
            return query[name], ""
    return None


def _jwks_of(provider: Mapping[str, Any]) -> str:
    local = provider.get("local_jwks")
    return str(local.get("inline_string", "")) if isinstance(local, Mapping) else ""


def authenticate(
    config: Mapping[str, Any],
    headers: Mapping[str, str],
    path: str = "/",
    *,
    now: float,
    verifier: Verifier = rs256_verifier,
) -> JwtOutcome:
    """Apply a jwt_authn ``typed_config`` (Istio's allow-missing requirement) to a request.

    ``headers`` have lower-case names. A provider with ``remote_jwks`` has no keys here, so its
    tokens fail verification: runners should resolve ``jwksUri`` into ``local_jwks``.
    """
    query = dict(parse_qsl(path.split("?", 1)[1])) if "?" in path else {}
    providers: Mapping[str, Mapping[str, Any]] = config.get("providers", {})
    errors: list[JwtStatus] = []
    for name in providers:
        provider = providers[name]
        found = _token_at(provider, headers, query)
        if found is None:
            continue
        token, header = found
        check = inspect_token(token, _jwks_of(provider), verifier)
        status = _status(check, provider, now)
        if status is not JwtStatus.OK:
            errors.append(status)
            continue
        set_headers: dict[str, str] = {}
        if provider.get("forward_payload_header"):
            set_headers[str(provider["forward_payload_header"]).lower()] = check.payload_b64
        for c in provider.get("claim_to_headers", ()):
            claim = check.payload.get(str(c["claim_name"]))
            if claim is not None and not isinstance(claim, dict | list):
                set_headers[str(c["header_name"]).lower()] = (
                    str(claim).lower() if isinstance(claim, bool) else str(claim)
                )
        remove = (header,) if header and not provider.get("forward") else ()
        return JwtOutcome(JwtStatus.OK, name, dict(check.payload), FrozenMap(set_headers), remove)
    if not errors:
        return JwtOutcome(JwtStatus.OK if _allows_missing(config) else JwtStatus.MISSING)
    preferred = [e for e in errors if e is not JwtStatus.UNKNOWN_ISSUER]
    return JwtOutcome((preferred or errors)[0])


def _allows_missing(config: Mapping[str, Any]) -> bool:
    return "allow_missing" in json.dumps(config.get("rules", []))
