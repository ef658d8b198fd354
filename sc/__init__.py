"""Smart-community gateway: shared core (contracts, site config, command line)."""

__version__ = "0.1.0"
