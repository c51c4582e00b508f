"""`python -m services.notification`."""

from services.common.server import main
from services.notification.app import build_app

main("notification", build_app)
