"""The ``pinembed`` command: thin commands over the public API."""
