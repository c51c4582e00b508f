"""`python -m services.notification`."""

from services.common.server import serve
from services.common.settings import Settings
from services.notification.app import build_app

settings = Settings.from_env("notification")
serve(build_app(settings), settings)
