"""`python -m services.frontend`."""

from services.common.server import serve
from services.common.settings import Settings
from services.frontend.app import build_app

settings = Settings.from_env("frontend")
serve(build_app(settings), settings)
