"""`python -m services.order`."""

from services.common.server import main
from services.order.app import build_app

main("order", build_app)
