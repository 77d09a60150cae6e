"""A split's sessions, planned over the whole split before any features are read.

Sessions (pipeline/sessions.py) need every utterance of a recording in one place, wherever the
shards put it. Joining inside the loader's shuffle pools (256 rows) split a speaker whose rows
fell into two pools, and cut every recording differently depending on which rows shared a pool.
Rows hold their features (~1 MB per 35 s), so the split is never gathered in one place; instead:

1. plan (`plan_sessions`): read only utt_id, speaker and duration of every shard (a few bytes a
   row), group by (speaker, chapter), cut into sessions, all from the seed: the same seed gives
   the same sessions;
2. read the planned sessions' rows, a pool of sessions at a time:
   - locally (`SessionReader`, used by LocalLoader): a pool reads each shard it touches once,
     keeps only its rows, joins them and hands the sessions on; memory holds one pool of
     sessions and one shard's columns;
   - on Ray Data (`session_dataset`, used by training): each row is tagged with its session and
     its place in it, rows are grouped by session (Ray's shuffle moves each row once, through the
     object store, spilling to disk past it) and joined, so workers receive whole sessions.
   The sessions' order is shuffled after they are formed (per epoch locally; Ray numbers them
   in a seeded random order and the workers' shuffle buffers mix them per epoch).
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass

from pipeline.errors import UserError
from pipeline.sessions import SessionConfig, join_run, join_runs, separator_ids, session_runs
from pipeline.shards import read_columns

INDEX_COLUMNS = ["utt_id", "speaker", "duration"]
SESSION, PLACE = "_session", "_place"      # Ray Data's tag columns (dropped when joined)


@dataclass
class SessionPlan:
    """Sessions of a split, recordings in sorted order: each a list of (shard, row) places."""

    shard_uris: list[str]
    sessions: list[list[tuple[int, int]]]
    utt_ids: list[list[str]]
    durations: list[float]           # seconds per session
    config: SessionConfig

    def summary(self) -> dict:
        """Session lengths as planned (for the run's log and MLflow params)."""
        d = self.durations
        return {"sessions": len(d), "session_utterances": sum(len(s) for s in self.sessions),
                "session_min_seconds": round(min(d), 2) if d else 0.0,
                "session_median_seconds": round(statistics.median(d), 2) if d else 0.0,
                "session_max_seconds": round(max(d), 2) if d else 0.0,
                "sessions_below_min": sum(x < self.config.min_seconds for x in d),
                "sessions_above_max": sum(x > self.config.max_seconds for x in d)}

    def describe(self) -> str:
        s = self.summary()
        return (f"sessions: {s['sessions']} from {s['session_utterances']} utterances, "
                f"{s['session_min_seconds']} / {s['session_median_seconds']} / "
                f"{s['session_max_seconds']} s min / median / max "
                f"({s['sessions_below_min']} below {self.config.min_seconds:g} s, "
                f"{s['sessions_above_max']} single utterances above {self.config.max_seconds:g} s)")

    def places(self, seed: int) -> dict[str, tuple[int, int]]:
        """utt_id -> (session number, place in the session); the numbers in a seeded random
        order, so sessions sorted by number are shuffled."""
        order = list(range(len(self.sessions)))
        random.Random(f"session-order/{seed}").shuffle(order)
        return {u: (number, place) for number, k in enumerate(order)
                for place, u in enumerate(self.utt_ids[k])}


def plan_sessions(shard_uris: list[str], config: SessionConfig, seed: int) -> SessionPlan:
    """Read the index columns of every shard and cut the split's recordings into sessions."""
    places, speakers, ids, durations = [], [], [], []
    for s, uri in enumerate(shard_uris):
        cols = read_columns(uri, INDEX_COLUMNS, why="sessions (data.sessions)")
        places += [(s, r) for r in range(len(cols["utt_id"]))]
        speakers += [str(x or "") for x in cols["speaker"]]
        ids += [str(x) for x in cols["utt_id"]]
        durations += [float(x) for x in cols["duration"]]
    runs = session_runs(speakers, ids, durations, config, random.Random(f"sessions/{seed}"))
    return SessionPlan(shard_uris, [[places[i] for i in run] for run in runs],
                       [[ids[i] for i in run] for run in runs],
                       [sum(durations[i] for i in run) for run in runs], config)


class SessionReader:
    """Joined sessions of a plan, read a pool at a time from the shards."""

    def __init__(self, plan: SessionPlan, columns: list[str], manifest: dict):
        self.plan, self.columns, self.manifest = plan, columns, manifest

    def read(self, numbers: list[int]) -> dict:
        """Sessions `numbers` of the plan -> column dict of joined rows, in that order."""
        wanted: dict[int, set[int]] = {}
        for k in numbers:
            for shard, row in self.plan.sessions[k]:
                wanted.setdefault(shard, set()).add(row)
        rows: dict[tuple[int, int], int] = {}      # (shard, row) -> index in `pool`
        pool: dict = {c: [] for c in self.columns}
        for shard in sorted(wanted):               # each shard read once, only its rows kept
            keep = sorted(wanted[shard])
            cols = read_columns(self.plan.shard_uris[shard], self.columns, keep)
            for r in keep:
                rows[(shard, r)] = len(rows)
            for c in self.columns:
                pool[c] += cols[c]
        runs = [[rows[place] for place in self.plan.sessions[k]] for k in numbers]
        return join_runs(pool, runs, self.manifest)


def session_dataset(ds, columns: list[str], plan: SessionPlan, manifest: dict, seed: int):
    """A Ray Data dataset of a split's utterance rows (holding `columns`) -> one row per
    planned session, with the same columns."""
    import pyarrow as pa

    places = plan.places(seed)
    names = list(columns)

    def tag(table: pa.Table) -> pa.Table:
        found = [places.get(u) for u in table.column("utt_id").to_pylist()]
        if any(p is None for p in found):
            raise UserError("data.sessions: the split's shards changed after its sessions were planned")
        return (table.append_column(SESSION, pa.array([p[0] for p in found], pa.int64()))
                .append_column(PLACE, pa.array([p[1] for p in found], pa.int64())))

    sep = separator_ids(manifest)

    def join(group: pa.Table) -> pa.Table:
        group = group.sort_by(PLACE)
        columns = {c: group.column(c).to_pylist() for c in names}
        row = join_run(columns, list(range(group.num_rows)), sep)
        return pa.Table.from_pylist([row], schema=group.select(names).schema)

    tagged = ds.map_batches(tag, batch_format="pyarrow", batch_size=None)
    return tagged.groupby(SESSION).map_groups(join, batch_format="pyarrow")
