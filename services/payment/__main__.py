"""`python -m services.payment`."""

from services.common.server import serve
from services.common.settings import Settings
from services.payment.app import build_app

settings = Settings.from_env("payment")
serve(build_app(settings), settings)
