"""Contracts between edge, cloud and devices: topics, messages and commands (schema v1).

Documented for humans in ``docs/contracts.md``.
"""

from .commands import *  # noqa: F403
from .commands import __all__ as _commands_all
from .kinds import *  # noqa: F403
from .kinds import __all__ as _kinds_all
from .messages import *  # noqa: F403
from .messages import __all__ as _messages_all
from .topics import *  # noqa: F403
from .topics import __all__ as _topics_all

__all__ = [*_topics_all, *_messages_all, *_commands_all, *_kinds_all]
