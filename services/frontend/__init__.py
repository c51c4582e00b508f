"""frontend: the storefront. `GET /` serves the React single-page app built from `web/` (with the
catalog it fetched from api-gateway's `GET /api/products` embedded, for a fast first paint), or,
when the bundle is not built, a simple page rendered on the server. The page talks to `/api/*` on
the same origin, which the frontend forwards to api-gateway. The login JWT lives in an HttpOnly
cookie that page scripts cannot read; the frontend turns it into `Authorization: Bearer` on the
way to the gateway."""
