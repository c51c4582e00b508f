"""The behaviour server: any declared app, as a real HTTP service (see :mod:`.app`)."""
