"""`python -m services.api_gateway`."""

from services.api_gateway.app import build_app
from services.common.server import serve
from services.common.settings import Settings

settings = Settings.from_env("api-gateway")
serve(build_app(settings), settings)
