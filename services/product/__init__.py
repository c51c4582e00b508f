"""product: the catalog and its inventory, with stock reservations for orders.

Versions differ visibly, so a traffic split shows on the storefront: v1 returns plain products;
v2 adds a star `rating` and `rating_count`; v3 adds them too and marks well-rated products as
`featured`. The version serving a request is in every response (`version`, `served_by`).
"""
