"""Time. Every deadline of the notice is Beijing time; the clock of a service is injectable
(``ServiceState.clock``) so tests can stand on any day."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")
Clock = Callable[[], datetime]
