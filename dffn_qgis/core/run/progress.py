"""Progress and cancellation callbacks, so the command line and QGIS drive the same code.

Every long-running function of the core takes a :class:`Monitor` (or ``None``). It reports
``progress(fraction, message)`` with ``fraction`` in [0, 1] and polls ``is_cancelled()``;
:meth:`Monitor.check` raises :class:`~dffn_qgis.core.errors.Cancelled` when asked to stop.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional

from ..errors import Cancelled

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]
LogFn = Callable[[str], None]

log = logging.getLogger("dffn_qgis")


class Monitor:
    """Progress, cancellation and log sink for one run, or a slice of a parent's range.

    ``sub(start, stop)`` returns a monitor whose fractions 0..1 map onto ``start..stop`` of
    this one, so each stage reports 0..1 without knowing where it sits in the whole run.
    """

    def __init__(self, progress: Optional[ProgressFn] = None, is_cancelled: Optional[CancelFn] = None,
                 info: Optional[LogFn] = None, start: float = 0.0, stop: float = 1.0):
        self._progress = progress
        self._is_cancelled = is_cancelled
        self._info = info
        self.start = start
        self.stop = stop

    def sub(self, start: float, stop: float) -> "Monitor":
        span = self.stop - self.start
        return Monitor(self._progress, self._is_cancelled, self._info,
                       self.start + span * start, self.start + span * stop)

    def progress(self, fraction: float, message: str = "") -> None:
        if self._progress is not None:
            fraction = min(max(float(fraction), 0.0), 1.0)
            self._progress(self.start + (self.stop - self.start) * fraction, message)

    def cancelled(self) -> bool:
        return bool(self._is_cancelled is not None and self._is_cancelled())

    def check(self) -> None:
        """Raise :class:`Cancelled` if the user asked to stop."""
        if self.cancelled():
            raise Cancelled()

    def info(self, message: str) -> None:
        log.info(message)
        if self._info is not None:
            self._info(message)


def as_monitor(monitor: Optional[Monitor]) -> Monitor:
    return monitor if monitor is not None else Monitor()
