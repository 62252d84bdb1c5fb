"""Runs of several processes (``torch.distributed``): which rank this is, and one shared seed.

Nothing here imports torch: a process group can only be initialized once
``torch.distributed`` has been imported, so when it is not in ``sys.modules``
this process is not part of one.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ._seed import MAX_SEED, parse_digits, validate_seed

__all__ = ["broadcast_seed", "get_rank"]

RANK_ENV_VAR = "RANK"


def _process_group() -> Any:
    """``torch.distributed`` if this process is in an initialized process group, else None."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist
    return None


def get_rank() -> int:
    """This process's rank: from ``torch.distributed`` when initialized, else ``$RANK``, else 0.

    ``$RANK``, when set, must be ASCII digits 0-9 alone: an empty or malformed
    value raises ``ValueError``.
    """
    dist = _process_group()
    if dist is not None:
        rank: int = dist.get_rank()
        return rank
    raw = os.environ.get(RANK_ENV_VAR)
    if raw is None:
        return 0
    # Set but empty is an error, not rank 0: it is typically RANK=$VAR with VAR unset, on
    # every rank, and each would then take rank 0's seed.
    return parse_digits(
        raw, what=f"environment variable {RANK_ENV_VAR}", allowed="a process rank (an int >= 0)"
    )


def broadcast_seed(seed: int | None = None, *, src: int = 0, group: Any = None) -> int:
    """One seed that every rank agrees on: rank ``src``'s, sent to all the others.

    On rank ``src``, ``seed`` is the seed to share; if it is ``None`` a fresh
    one is drawn from the operating system's entropy (``secrets``), never from
    a global generator. The other ranks' ``seed`` arguments are ignored, and
    every rank returns rank ``src``'s seed. Outside an initialized process
    group it returns ``seed`` (or a fresh one) at once. Call it on every rank:
    it is a collective operation, like ``torch.distributed.broadcast``. Log the
    result to run the same again with that seed.

    >>> broadcast_seed(1234)  # a single process: nothing to agree with
    1234
    """
    import secrets

    if seed is not None:
        seed = validate_seed(seed)
    dist = _process_group()
    if dist is None:
        return seed if seed is not None else secrets.randbelow(MAX_SEED + 1)
    mine = seed if seed is not None else secrets.randbelow(MAX_SEED + 1)
    payload: list[Any] = [mine if dist.get_rank() == src else None]
    if group is None:
        dist.broadcast_object_list(payload, src=src)
    else:
        dist.broadcast_object_list(payload, src=src, group=group)
    return validate_seed(payload[0])
