"""The package version (one place; recorded in every result)."""
__version__ = "0.1.0"
