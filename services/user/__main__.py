"""`python -m services.user`."""

from services.common.server import main
from services.user.app import build_app

main("user", build_app)
