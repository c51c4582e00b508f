"""`python -m services.product`."""

from services.common.server import serve
from services.common.settings import Settings
from services.product.app import build_app

settings = Settings.from_env("product")
serve(build_app(settings), settings)
