"""The user service's routes: `POST /users`, `POST /login`, `GET /users/me`,
`GET /.well-known/jwks.json`."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from fastapi import FastAPI, Header
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from services.common.app import Runtime, create_app
from services.common.cache import Cache, make_cache
from services.common.errors import ServiceError
from services.common.settings import Settings
from services.common.storage import Store, retry_on_clash
from services.user.models import Base, SigningKey, User
from services.user.schemas import Jwk, Jwks, LoginRequest, Token, UserCreate, UserPublic
from services.user.security import (
    DUMMY_HASH,
    hash_password,
    new_signing_key,
    public_jwk,
    verify_password,
)

DEFAULT_ISSUER = "http://user.shop.svc.cluster.local"
DEFAULT_AUDIENCE = "shop"
PROFILE_TTL_S = 60.0

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, invalid or expired token"}
}


class UserService:
    """State of the user service: storage, cache, the signing keys."""

    def __init__(self, settings: Settings) -> None:
        self.store = Store(settings, Base)
        self.cache: Cache = make_cache(settings.redis_url, "user:")
        self.issuer = settings.str_env("JWT_ISSUER", DEFAULT_ISSUER)
        self.audience = settings.str_env("JWT_AUDIENCE", DEFAULT_AUDIENCE)
        self.ttl_s = int(settings.float_env("TOKEN_TTL_S", 3600, 1, 86400 * 30))
        self.keys: list[tuple[str, str]] = []
        self.public: dict[str, Any] = {}
        self.jwks = Jwks(keys=[])

    def load_keys(self) -> None:
        """Load the signing keys, creating one at first start."""

        def _load() -> list[tuple[str, str]]:
            with self.store.sessions.begin() as session:
                if session.get_bind().dialect.name == "postgresql":
                    # replicas starting together take turns: the first creates the key, the
                    # others find it (else each could sign with a key the others never load)
                    session.execute(text("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE"))
                rows = session.scalars(
                    select(SigningKey).order_by(SigningKey.created_at, SigningKey.kid)
                ).all()
                if not rows:
                    kid, pem = new_signing_key()
                    session.add(SigningKey(kid=kid, private_pem=pem, created_at=_now()))
                    return [(kid, pem)]
                return [(row.kid, row.private_pem) for row in rows]

        retry_on_clash(_load)
        # On SQLite (one file per replica) or a key added by hand: the oldest one signs.
        with self.store.sessions() as session:
            rows = session.scalars(
                select(SigningKey).order_by(SigningKey.created_at, SigningKey.kid)
            ).all()
            self.keys = [(row.kid, row.private_pem) for row in rows]
        self.jwks = Jwks(keys=[Jwk(**public_jwk(kid, pem)) for kid, pem in self.keys])
        self.public = {
            kid: load_pem_private_key(pem.encode(), None).public_key() for kid, pem in self.keys
        }

    def issue(self, user: User) -> str:
        kid, pem = self.keys[0]
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user.id,
            "email": user.email,
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid})

    def verify(self, authorization: str | None) -> dict[str, Any]:
        token = bearer_token(authorization)
        try:
            public = self.public[jwt.get_unverified_header(token).get("kid", "")]
            claims: dict[str, Any] = jwt.decode(
                token,
                public,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except (jwt.PyJWTError, KeyError, ValueError):
            raise _unauthorized("invalid or expired token") from None
        return claims


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise _unauthorized("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("expected 'Authorization: Bearer <token>'")
    return token.strip()


def _unauthorized(message: str) -> ServiceError:
    return ServiceError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


def _now() -> datetime:
    return datetime.now(UTC)


def _public(user: User) -> UserPublic:
    created = user.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return UserPublic(id=user.id, email=user.email, name=user.name, created_at=created.isoformat())


def build_app(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    svc = UserService(settings)

    async def startup(_: FastAPI, rt: Runtime) -> None:
        svc.store.create_schema()
        svc.load_keys()
        rt.checks.append(svc.store.check)

    async def shutdown(_: FastAPI, __: Runtime) -> None:
        await svc.cache.aclose()
        svc.store.dispose()

    app = create_app(
        settings,
        title="user",
        description="Accounts, login and RS256 JWTs; the JWKS for Istio RequestAuthentication.",
        startup=startup,
        shutdown=shutdown,
        transport=transport,
    )

    @app.post(
        "/users",
        status_code=201,
        tags=["users"],
        summary="Register a user",
        responses={409: {"description": "email already registered"}},
    )
    async def register(body: UserCreate) -> UserPublic:
        password_hash = await run_in_threadpool(hash_password, body.password)

        def _create(session: Session) -> UserPublic:
            user = User(
                id=str(uuid.uuid4()),
                email=body.email.lower(),
                name=body.name,
                password_hash=password_hash,
                created_at=_now(),
            )
            session.add(user)
            session.flush()
            return _public(user)

        try:
            return await svc.store.run(_create)
        except IntegrityError:
            raise ServiceError(409, "conflict", "email already registered") from None

    @app.post(
        "/login",
        tags=["users"],
        summary="Log in: an RS256 JWT",
        responses={401: {"description": "wrong email or password"}},
    )
    async def login(body: LoginRequest) -> Token:
        def _find(session: Session) -> User | None:
            return session.scalars(select(User).where(User.email == body.email.lower())).first()

        user = await svc.store.run(_find)
        stored = user.password_hash if user else DUMMY_HASH
        ok = await run_in_threadpool(verify_password, body.password, stored)
        if user is None or not ok:
            raise _unauthorized("wrong email or password")
        return Token(access_token=svc.issue(user), expires_in=svc.ttl_s)

    @app.get("/users/me", tags=["users"], summary="The logged-in user", responses=UNAUTHORIZED)
    async def me(authorization: Annotated[str | None, Header()] = None) -> UserPublic:
        claims = svc.verify(authorization)
        user_id = str(claims["sub"])
        cached = await svc.cache.get(f"profile:{user_id}")
        if cached is not None:
            return UserPublic.model_validate_json(cached)

        def _get(session: Session) -> UserPublic | None:
            user = session.get(User, user_id)
            return _public(user) if user else None

        found = await svc.store.run(_get)
        if found is None:
            raise _unauthorized("the token's user does not exist")
        await svc.cache.set(f"profile:{user_id}", found.model_dump_json(), PROFILE_TTL_S)
        return found

    @app.get(
        "/.well-known/jwks.json",
        tags=["keys"],
        summary="Public signing keys (JWKS) for RequestAuthentication jwksUri",
    )
    async def jwks() -> Jwks:
        return svc.jwks

    return app
