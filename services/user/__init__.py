"""user: registration, login with scrypt-hashed passwords, RS256 JWTs and their JWKS.

The JWKS at `/.well-known/jwks.json` is what an Istio `RequestAuthentication` points its
`jwksUri` at; tokens carry `iss`, `aud`, `sub` (the user id), `email`, `iat`, `exp` and a `kid`
header naming the key.
"""
