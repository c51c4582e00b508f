"""frontend: the storefront. `GET /` renders the catalog on the server (from api-gateway's
`GET /api/products`), a small script does the rest through `/api/*` on the same origin, which the
frontend forwards to api-gateway. The login JWT lives in an HttpOnly cookie that page scripts
cannot read; the frontend turns it into `Authorization: Bearer` on the way to the gateway."""
