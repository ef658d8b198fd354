"""Contracts between edge, cloud and devices: topics and messages (schema v1).

Documented for humans in ``docs/contracts.md``.
"""

from .messages import *  # noqa: F403
from .messages import __all__ as _messages_all
from .topics import *  # noqa: F403
from .topics import __all__ as _topics_all

__all__ = [*_topics_all, *_messages_all]
