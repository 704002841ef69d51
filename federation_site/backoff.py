"""The one retry curve of every delivery row (callbacks, notifications, webhooks, subscribe calls): exponential
from 2 s, capped at 30 min, with equal jitter so that rows failing together do not retry together."""

from __future__ import annotations

import random
from datetime import timedelta

BASE_SECONDS = 2.0
CAP_SECONDS = 30 * 60.0


def backoff(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt."""
    ceiling = min(CAP_SECONDS, BASE_SECONDS * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))
