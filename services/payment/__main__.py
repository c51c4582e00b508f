"""`python -m services.payment`."""

from services.common.server import main
from services.payment.app import build_app

main("payment", build_app)
