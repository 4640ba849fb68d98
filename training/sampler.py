"""Which samples each rank trains on at each step: a contract, not a data loader.

The sequence of micro-batches is a function of (seed, epoch) only: a permutation, sorted by
length within mega-batches of ``bucket`` micro-batches (less padding), cut into micro-batches,
and the micro-batches shuffled. Step ``s`` of a run with world size ``W`` and accumulation
``A`` consumes global micro-batches ``s·W·A … (s+1)·W·A − 1``; rank ``r`` takes those whose
index ≡ r (mod W). So a run's result does not depend on how its global batch is split
between ranks and accumulation, up to float rounding, and resuming needs only the step.
"""

from __future__ import annotations

import numpy as np


def epoch_order(lengths: np.ndarray, micro: int, seed: int, epoch: int, bucket: int):
    """``(order, starts)``: the epoch's micro-batch ``j`` is ``order[starts[j]:][:micro]``."""
    n = len(lengths)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    mega = np.arange(n) // (micro * bucket)
    order = order[np.lexsort((lengths[order], mega))]  # stable: ties keep the permutation
    starts = rng.permutation(np.arange(0, n, micro))
    return order, starts


class MicroBatches:
    """Global micro-batch ``m`` → sample indices; the epoch's arrays computed once."""

    def __init__(self, lengths: np.ndarray, micro: int, seed: int, bucket: int):
        if not len(lengths):
            raise ValueError("no samples to draw micro-batches from")
        self.lengths, self.micro, self.seed, self.bucket = lengths, micro, seed, bucket
        self.per_epoch = -(-len(lengths) // micro)
        self._epoch, self._arrays = -1, None

    def __call__(self, m: int) -> tuple[int, np.ndarray]:
        """The epoch and the sample indices of global micro-batch ``m``."""
        epoch, j = divmod(m, self.per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._arrays = epoch_order(self.lengths, self.micro, self.seed, epoch, self.bucket)
        order, starts = self._arrays
        return epoch, order[starts[j] : starts[j] + self.micro]


def rank_micro_batches(step: int, world: int, accumulation: int, rank: int) -> list[int]:
    """The global micro-batch indices rank ``rank`` trains on at step ``step``."""
    first = step * world * accumulation
    return [first + rank + world * a for a in range(accumulation)]
