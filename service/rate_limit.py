"""Per-minute request limits: shared by every replica through Redis, and still enforced by
each process on its own while Redis is unavailable (an outage must not lift the limits)."""

from __future__ import annotations

import time

from service.errors import StoreUnavailable
from service.store import SessionStore


class RateLimiter:
    """Fixed one-minute windows per subject (a user id, or ``auth-fail:<address>``)."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self._local: dict[tuple[str, int], int] = {}

    async def over(self, subject: str, limit_per_minute: int) -> bool:
        """Count one request of ``subject``; True when it exceeds ``limit_per_minute``
        (0 = unlimited)."""
        if limit_per_minute <= 0:
            return False
        try:
            return await self.store.hit_rate_limit(subject, limit_per_minute)
        except StoreUnavailable:
            return self._local_hit(subject, limit_per_minute)

    def _local_hit(self, subject: str, limit_per_minute: int) -> bool:
        minute = int(time.time() // 60)
        for stale in [key for key in self._local if key[1] < minute]:
            del self._local[stale]
        count = self._local.get((subject, minute), 0) + 1
        self._local[(subject, minute)] = count
        return count > limit_per_minute

    @staticmethod
    def seconds_left_in_window() -> int:
        """Seconds until the current window ends (the ``Retry-After`` of a 429)."""
        return max(1, 60 - int(time.time()) % 60)
