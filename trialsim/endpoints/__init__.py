"""Endpoint families: one module each, registered by name (see :mod:`trialsim.endpoints.base`).

Importing this package registers the shipped families.
"""
from trialsim.endpoints import binary_event  # noqa: F401  (registers "binary_event")
from trialsim.endpoints import markers, duration  # noqa: F401
from trialsim.endpoints import ordinal, plain_binary, plain_continuous  # noqa: F401
