"""`python -m services.behavior_server` (service name and declaration from the environment)."""

import os

from services.behavior_server.app import build_app
from services.common.server import main

main(os.environ.get("SERVICE_NAME", "app"), build_app)
