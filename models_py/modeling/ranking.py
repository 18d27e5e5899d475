"""The night's scores in the orders the product keeps: by visitor id for the score files, by probability for the
deciles; neither sorts every visitor where it need not (140M of them at scale 100)."""

from __future__ import annotations

import numpy as np

DENSE_ID_SPAN = 2  # ids spanning at most 2x the visitors are ordered by slot (a byte and a probability a slot)


def by_visitor(visitor_id: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The night's ids and probabilities in visitor id order, the order the score history and the serving files keep
    (a lookup by visitor reads one row group of them). Sorting these two arrays here costs a fraction of DuckDB's
    sort of every column of the night's rows, which was 60% of writing the serving file. A shop's ids are usually
    dense (counters): then each id is placed at its own slot, linear in the visitors, where argsort of 14M ids took
    3 s at scale 10; sparse or repeated ids are sorted (repeated ones stay, for the scores gate to name)."""
    if visitor_id.size:
        low = int(visitor_id.min())
        span = int(visitor_id.max()) - low + 1
        if span <= DENSE_ID_SPAN * visitor_id.size:
            slot = visitor_id - low
            present = np.zeros(span, bool)
            present[slot] = True
            if np.count_nonzero(present) == visitor_id.size:  # each id once
                at_slot = np.empty(span, p.dtype)
                at_slot[slot] = p
                del slot  # before the outputs: at 140M visitors each array is 1.1 GB
                return (np.flatnonzero(present) + low).astype(visitor_id.dtype, copy=False), at_slot[present]
    order = np.argsort(visitor_id)
    return visitor_id[order], p[order]


def deciles(visitor_id: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Decile 1..10 by probability, highest first, visitors of equal probability ordered by visitor id: what ranking
    by (probability desc, visitor id) gives (rank r in decile r * 10 // n + 1), without sorting every visitor. The
    nine edge values are selected (np.partition), each visitor is placed by comparing with them, and only the
    visitors tied at an edge are ordered by id: linear in the visitors, where a sort of 140M at scale 100 was not."""
    n = p.size
    decile = np.ones(n, np.int8)
    edges = [e for e in (-(-k * n // 10) for k in range(1, 10)) if 0 < e < n]  # the first rank of the next decile
    if not edges:
        return decile
    descending = np.negative(p)  # ascending order of -p is descending order of p
    at_edges = np.partition(descending, edges)[edges]
    for edge, value in zip(edges, at_edges, strict=True):
        after = descending > value  # ranked after the edge whatever their ids
        tied = np.flatnonzero(descending == value)
        before = n - int(np.count_nonzero(after)) - tied.size  # visitors ranked ahead of every tied one
        decile += after
        if edge == before:  # the tied ones (usually the edge's visitor alone) all start the next decile
            decile[tied] += 1
        else:  # the tie straddles the edge: its visitors from the edge's rank on, by id
            decile[tied[np.argsort(visitor_id[tied], kind="stable")][edge - before :]] += 1
    return decile
