"""api-gateway: the single entry point of the shop's API. It validates requests, forwards them
to user, product and order (passing `Authorization` and `Idempotency-Key` along, and the trace
headers), and aggregates where a page needs two services at once (`GET /api/me`: the profile
from user and the order history from order, fetched concurrently)."""
