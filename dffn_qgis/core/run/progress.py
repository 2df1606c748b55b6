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


def time_left(elapsed: float, fraction: float) -> str:
    """``"about 1 min 20 s left"`` from the time spent and the share done ("" while too early to say)."""
    if elapsed < 3.0 or not 0.02 <= fraction < 1.0:
        return ""
    left = elapsed * (1.0 - fraction) / fraction
    if left < 60:
        return f"about {max(1, round(left))} s left"
    minutes, seconds = divmod(round(left), 60)
    if minutes < 60:
        return f"about {minutes} min {seconds:02d} s left"
    return f"about {minutes // 60} h {minutes % 60:02d} min left"


class StatusLine:
    """The text a progress display shows: a new stage at once, the same stage (say "epoch 12" after
    "epoch 11") at most every ``every`` seconds, with the time left; ``None`` when nothing changes."""

    def __init__(self, every: float = 2.0, clock=None):
        import re
        import time

        self._digits = re.compile(r"[-+]?\d[\d.,eE+-]*")
        self._clock = clock or time.monotonic
        self._start = self._clock()
        self._last_key, self._last_time = None, -float("inf")
        self.every = every

    def update(self, fraction: float, message: str) -> Optional[str]:
        if not message:
            return None
        now = self._clock()
        key = self._digits.sub("#", message)
        if key == self._last_key and now - self._last_time < self.every:
            return None
        self._last_key, self._last_time = key, now
        left = time_left(now - self._start, fraction)
        return f"{message} ({left})" if left else message
