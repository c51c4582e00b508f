"""``python -m playground`` is the ``meshplay`` command."""

from playground.cli import main

raise SystemExit(main())
