"""A simulated shop shaped like Retail Rocket, driven by hidden per-visitor state whose truth we keep.

Stages, per chunk of visitors: their hidden traits and purchase process (``visitors``), what that shows as
sessions, views, carts and purchases (``behaviour``), then the event rows in the real schema. Everything is
vectorised with numpy; visitors are simulated in chunks so that memory does not grow with scale.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from models_py.data.events_file import EVENT_TYPES, EVENTS_SCHEMA, HEADER
from models_py.shop_calendar import DAY_MS
from models_py.world import behaviour
from models_py.world.catalogue import CSV_BODY, build_catalogue, write_catalogue, write_csv
from models_py.world.parameters import ShopParameters
from models_py.world.traffic import SHOP_START, SHOP_START_MS, to_ms
from models_py.world.visitors import Episodes, Visitors, draw_visitors, run_hidden_chain

CHUNK_VISITORS = 1_500_000


@dataclass
class ChunkResult:
    events: pa.Table
    visitors: pa.Table
    episodes: pa.Table
    transactions: int


def simulate_chunk(params: ShopParameters, catalogue, rng: np.random.Generator, n: int, id_offset: int,
                   transaction_offset: int) -> ChunkResult:  # fmt: skip
    visitors = draw_visitors(params, catalogue, rng, n)
    episodes = run_hidden_chain(visitors, catalogue, rng)
    sessions = behaviour.draw_sessions(params, visitors, episodes, rng)
    views, session, last_view = behaviour.draw_views(params, catalogue, visitors, episodes, sessions, rng)
    carts = behaviour.draw_carts(params, episodes, sessions, views, session, last_view, rng)
    bought, tx_id, pre_carts, extra_views = behaviour.draw_purchases(
        params, catalogue, visitors, episodes, transaction_offset, rng
    )
    parts = [(views, behaviour.VIEW), (extra_views, behaviour.VIEW), (carts, behaviour.ADDTOCART),
             (pre_carts, behaviour.ADDTOCART), (bought, behaviour.TRANSACTION)]  # fmt: skip
    owner = np.concatenate([a.owner for a, _ in parts])
    time = np.concatenate([a.time for a, _ in parts])
    item = np.concatenate([a.item for a, _ in parts])
    event = np.concatenate([np.full(a.owner.size, kind, np.int8) for a, kind in parts])
    txid = np.concatenate([np.full(owner.size - bought.owner.size, -1), tx_id])
    # A visitor's first event is its arrival; nothing falls outside the simulated period.
    time = np.maximum(time, visitors.arrival[owner])
    keep = time < params.days
    order = np.argsort(time[keep], kind="stable")
    owner, time, item, event, txid = (a[keep][order] for a in (owner, time, item, event, txid))
    visitor_ids = id_offset + rng.permutation(n).astype(np.int64)
    events = pa.table(
        {
            "timestamp": pa.array(to_ms(time), pa.int64()),
            "visitorid": pa.array(visitor_ids[owner], pa.int64()),
            "event": pa.DictionaryArray.from_arrays(
                pa.array(event, pa.int8()), pa.array(["view", "addtocart", "transaction"])
            ).cast(pa.string()),
            "itemid": pa.array(item, pa.int64()),
            "transactionid": pa.array(txid, pa.int64(), mask=txid < 0),
        }
    )
    return ChunkResult(
        events=events,
        visitors=_visitors_truth(visitors, visitor_ids),
        episodes=_episodes_truth(episodes, visitor_ids),
        transactions=int(episodes.bought.sum()),
    )


def _visitors_truth(v: Visitors, visitor_ids: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "visitor_id": visitor_ids,
            "arrived_at_ms": to_ms(v.arrival),
            "churned_at_ms": to_ms(v.death),
            "browse_rate": v.browse_rate,
            "churn_rate": v.churn_rate,
            "episode_rate_new": v.kappa_new,
            "episode_rate_customer": v.kappa_customer,
            "episode_end_rate": v.eps,
            "conversion": v.q,
            "taste_category_id": v.taste_category,
        }
    )


def _episodes_truth(ep: Episodes, visitor_ids: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "visitor_id": visitor_ids[ep.owner],
            "started_at_ms": to_ms(ep.start),
            "ended_at_ms": to_ms(ep.end),
            "ended_in_purchase": ep.bought,
            "target_item_id": ep.target,
        }
    )


def _day_file(out: Path, day_index: int) -> Path:
    day = SHOP_START.date() + timedelta(days=day_index)
    return out / f"events_{day.isoformat()}.csv"


def simulate(
    out: Path,
    truth_dir: Path,
    scale: float = 1.0,
    seed: int = 42,
    params: ShopParameters | None = None,
    progress: Callable[[str], None] | None = None,
    event_types: tuple[str, ...] | None = None,
) -> dict[str, int]:
    """Write one CSV per shop day into ``out`` (real schema) and the hidden truth as Parquet into ``truth_dir``.
    With ``event_types``, only those events are written (``("transaction",)``: an order system's export of the same
    shop; the truth is the same).

    Files are written to a scratch folder and moved into place at the end, so a nightly run never sees half a world.
    """
    params = params or ShopParameters()
    n_total = max(1, round(params.visitors_per_scale * scale))
    catalogue = build_catalogue(params, np.random.default_rng([seed, 0]))
    scratch, truth_scratch = out / ".simulate-tmp", truth_dir / ".simulate-tmp"
    for d in (scratch, truth_scratch):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)

    n_chunks = -(-n_total // CHUNK_VISITORS)
    totals = {"events": 0, "visitors": n_total, "transactions": 0, "chunks": n_chunks}
    for chunk in range(n_chunks):
        lo = chunk * CHUNK_VISITORS
        rng = np.random.default_rng([seed, 1, chunk])
        result = simulate_chunk(params, catalogue, rng, min(CHUNK_VISITORS, n_total - lo), lo, totals["transactions"])
        totals["transactions"] += result.transactions
        events = result.events
        if event_types:
            events = events.filter(pc.is_in(events["event"], pa.array(event_types)))
        totals["events"] += events.num_rows
        _append_day_files(scratch, events, params.days, first_chunk=chunk == 0)
        pq.write_table(result.visitors, truth_scratch / f"visitors_{chunk:05d}.parquet")
        pq.write_table(result.episodes, truth_scratch / f"episodes_{chunk:05d}.parquet")
        if progress:
            progress(f"chunk {chunk + 1}/{n_chunks}: {totals['events']:,} events so far")
        del result
    if n_chunks > 1:  # chunks each cover every day: put each day file back in time order
        for path in sorted(scratch.glob("events_*.csv")):
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=EVENTS_SCHEMA))
            write_csv(table.sort_by("timestamp"), path)
    for path in scratch.glob("events_*.csv"):  # a day without events has no file (ingest refuses an empty one)
        if path.stat().st_size <= len(HEADER) + 1:
            path.unlink()
    write_catalogue(scratch, catalogue)
    _move_into_place(scratch, out, truth_scratch, truth_dir)
    world = {"seed": seed, "scale": scale, "days": params.days, "start_ms": SHOP_START_MS,
             "event_types": list(event_types or EVENT_TYPES)}  # fmt: skip
    (truth_dir / "world.json").write_text(json.dumps(world) + "\n")
    return totals


def _append_day_files(folder: Path, events: pa.Table, days: int, first_chunk: bool) -> None:
    day = (events["timestamp"].to_numpy() - SHOP_START_MS) // DAY_MS
    bounds = np.searchsorted(day, np.arange(days + 1))
    for d in range(days):
        with open(_day_file(folder, d), "ab") as fh:
            if first_chunk:
                fh.write((HEADER + "\n").encode())
            pacsv.write_csv(events.slice(bounds[d], bounds[d + 1] - bounds[d]), fh, CSV_BODY)


def _move_into_place(scratch: Path, out: Path, truth_scratch: Path, truth_dir: Path) -> None:
    for old in list(out.glob("events_*.csv")) + [out / "category_tree.csv", out / "item_properties.csv"]:
        old.unlink(missing_ok=True)
    for f in sorted(scratch.iterdir()):
        f.replace(out / f.name)
    for old in truth_dir.glob("*.parquet"):
        old.unlink()
    for f in sorted(truth_scratch.iterdir()):
        f.replace(truth_dir / f.name)
    scratch.rmdir()
    truth_scratch.rmdir()
