"""The view bank: generated images of stage 2, stored for stage 3.

A bank is a folder of shards plus an index::

    bank/index.json            format, generator and encoder hashes, resolution, finished shards
    bank/shard-00000.safetensors   images uint8 (N, 3, R, R), source, partner, alpha, seed

Shard ``s`` holds every view of source images ``[s * shard_size, (s + 1) * shard_size)``.
A self-augmentation has ``partner = -1`` and ``alpha = 1``; an interpolation ``G(SLERP(e_source,
e_partner, alpha))`` has alpha = the share of the source. Shards and the index are written
atomically and a shard counts only once the index lists it, so an interrupted ``generate``
never leaves a half shard that a reader could see, and a rerun skips finished shards.
"""

from gensis.bank.store import BankIndex, ViewBank, write_shard

__all__ = ["BankIndex", "ViewBank", "write_shard"]
