"""Site config: schema (:mod:`.schema`) and loader with line-numbered errors (:mod:`.loader`)."""

from .loader import ConfigError, LoadedConfig, load_site_config, resolve_path
from .schema import *  # noqa: F403
from .schema import __all__ as _schema_all

__all__ = ["ConfigError", "LoadedConfig", "load_site_config", "resolve_path", *_schema_all]
