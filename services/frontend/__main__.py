"""`python -m services.frontend`."""

from services.common.server import main
from services.frontend.app import build_app

main("frontend", build_app)
