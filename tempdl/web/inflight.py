"""Requests in progress, so shutdown can wait for them and limits can count them."""

from __future__ import annotations

import asyncio
from typing import Any


class InFlight:
    def __init__(self) -> None:
        self._requests: set[Any] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._requests)

    def enter(self, request: Any) -> None:
        self._requests.add(request)
        self._idle.clear()

    def leave(self, request: Any) -> None:
        self._requests.discard(request)
        if not self._requests:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight or `timeout` seconds pass; True when idle."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
