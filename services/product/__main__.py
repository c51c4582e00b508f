"""`python -m services.product`."""

from services.common.server import main
from services.product.app import build_app

main("product", build_app)
