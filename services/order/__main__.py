"""`python -m services.order`."""

from services.common.server import serve
from services.common.settings import Settings
from services.order.app import build_app

settings = Settings.from_env("order")
serve(build_app(settings), settings)
