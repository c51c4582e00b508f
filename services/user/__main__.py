"""`python -m services.user`."""

from services.common.server import serve
from services.common.settings import Settings
from services.user.app import build_app

settings = Settings.from_env("user")
serve(build_app(settings), settings)
