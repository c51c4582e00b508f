"""`python -m services.api_gateway`."""

from services.api_gateway.app import build_app
from services.common.server import main

main("api-gateway", build_app)
