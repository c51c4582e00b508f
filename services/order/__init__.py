"""order: places orders as a small saga — reserve stock at product, charge at payment, ask
notification to confirm — and keeps their status.

`POST /orders` needs an `Idempotency-Key`: the same key from the same user returns the same order
and never charges twice, because every step is idempotent too (reservations per order id, the
charge keyed `order-<id>`, the confirmation keyed `order-<id>-confirmation`). An order left
`pending` by a failed step is resumed by a retry with the same key. Tokens are verified locally
against the user service's JWKS, fetched once per process, as an Istio `RequestAuthentication`
does at the sidecar.
"""
