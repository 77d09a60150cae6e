"""Batch transcription of a corpus on Ray Data, resumable after a kill.

    plan     list the audio files under --input; ids are their paths under it, without extension
    skip     ids already in <output>.parts/ (finished batches) are not transcribed again
    map      Ray Data map_batches over an actor pool: each actor loads the model once (it comes
             from the object store, put there by the driver) and writes its batch's rows as one
             Parquet part, atomically, before returning
    finish   every part -> the --output table (one row per file: id, source, text, duration,
             segments, error), written atomically

A file that cannot be transcribed is a row with its error, not a failed dataset (an exception
in a Ray Data UDF fails the whole dataset). Parts are kept after the finish: they are the record
of what was done, so a rerun with more files transcribes only the new ones.
"""

from __future__ import annotations

import hashlib
import io
import sys
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from jobs.inference import inputs
from jobs.inference.model import load
from jobs.tasks import ASR
from jobs.inference.recognizer import WindowConfig
from jobs.inference.transcriber import DecodeOptions, transcribe
from pipeline import uri as uris
from pipeline.errors import UserError
from pipeline.files import write_atomic
from pipeline.ray_connection import ray_session

_TIME = [("start", pa.float64()), ("end", pa.float64()), ("text", pa.string())]
SCHEMA = pa.schema([
    ("id", pa.string()), ("source", pa.string()), ("text", pa.string()), ("duration", pa.float64()),
    ("segments", pa.list_(pa.struct(_TIME + [("words", pa.list_(pa.struct(_TIME)))]))),
    ("error", pa.string()),
])


@dataclass
class BatchConfig:
    model: str
    input: str
    output: str
    data: str | None = None
    address: str | None = None
    num_actors: int = 1
    num_gpus_per_actor: float = 0.0
    num_cpus_per_actor: float = 1.0
    batch_size: int = 8
    beam_size: int | None = None
    windows: WindowConfig = field(default_factory=WindowConfig)
    progress: bool = True

    def validate(self) -> None:
        if self.num_actors < 1 or self.batch_size < 1:
            raise UserError("--num-actors and --batch-size must be >= 1")
        if self.num_gpus_per_actor < 0 or self.num_cpus_per_actor < 0:
            raise UserError("--num-gpus-per-actor and --num-cpus-per-actor must be >= 0")


@dataclass
class BatchSummary:
    output: str
    files: int
    done_before: int
    transcribed: int
    failed: int

    def line(self) -> str:
        return (f"wrote {self.output}: {self.files} files ({self.done_before} already done, "
                f"{self.transcribed} transcribed now, {self.failed} failed)")


def parts_dir(output: str) -> str:
    return output.rstrip("/") + ".parts"


def part_name(ids: list[str]) -> str:
    """Named by its ids: a batch retried by Ray Data rewrites the same part, never a second one."""
    return "part-" + hashlib.sha1("\n".join(sorted(ids)).encode()).hexdigest()[:20] + ".parquet"


def read_parts(output: str) -> pa.Table:
    fs, path = uris.filesystem(parts_dir(output))
    tables = []
    if fs.exists(path):
        for name in sorted(fs.ls(path, detail=False)):
            base = name.rstrip("/").rsplit("/", 1)[-1]
            if base.startswith("part-") and base.endswith(".parquet"):
                with fs.open(name, "rb") as f:
                    tables.append(pq.read_table(f, schema=SCHEMA))
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()


def plan(config: BatchConfig) -> tuple[list[dict], set[str]]:
    """-> (every file as {id, uri}, ids already done)."""
    root = uris.absolute(config.input)
    files, problems = inputs.expand([root])
    if not files:
        raise UserError(problems[0] if problems else f"no audio files under {config.input}")
    items, seen = [], set()
    for uri in files:
        item_id = inputs.relative_id(root, uri)
        if item_id in seen:       # a.flac beside a.wav: keep the extension in the second id
            item_id = inputs.relative_id(root, uri + ".x")
        seen.add(item_id)
        items.append({"id": item_id, "uri": uri})
    done = set(read_parts(config.output).column("id").to_pylist())
    return items, done


class TranscribeActor:
    """One model per actor; __call__ transcribes a batch and writes its part."""

    def __init__(self, model_ref: list, output: str, beam_size: int | None, windows: WindowConfig,
                 device: str):
        import ray
        import torch

        self.model = ray.get(model_ref[0])
        self.model.model.to(device)
        self.tokenizer = self.model.text_tokenizer()
        self.output = output

        self.options = DecodeOptions(beam_size=beam_size, windows=windows)
        torch.set_num_threads(1)

    def transcribe_row(self, item_id: str, uri: str) -> dict:
        row = {"id": item_id, "source": uri, "text": None, "duration": None, "segments": None, "error": None}
        try:
            t = transcribe(self.model, uri, self.options, tokenizer=self.tokenizer)
        except Exception as exc:   # AudioError, or anything else: the row records it, the rest go on
            text = str(exc).strip()
            row["error"] = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
            return row
        segments = [s.to_dict() for s in t.segments]
        row.update(text=t.text, duration=t.duration, segments=segments)
        return row

    def __call__(self, batch: dict) -> dict:
        rows = [self.transcribe_row(str(i), str(u)) for i, u in zip(batch["id"], batch["uri"])]
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), sink)
        write_atomic(uris.join(parts_dir(self.output), part_name([r["id"] for r in rows])), sink.getvalue())
        return {"id": [r["id"] for r in rows], "failed": [r["error"] is not None for r in rows]}


def transcribe_on_ray(config: BatchConfig, model, todo: list[dict]) -> None:
    import ray
    from tqdm import tqdm

    device = "cuda" if config.num_gpus_per_actor > 0 else "cpu"
    ds = ray.data.from_items(todo, override_num_blocks=max(1, -(-len(todo) // config.batch_size)))
    ds = ds.map_batches(
        TranscribeActor, batch_size=config.batch_size, batch_format="numpy",
        fn_constructor_kwargs={"model_ref": [ray.put(model)], "output": config.output,
                               "beam_size": config.beam_size, "windows": config.windows, "device": device},
        compute=ray.data.ActorPoolStrategy(size=config.num_actors),
        num_cpus=config.num_cpus_per_actor, num_gpus=config.num_gpus_per_actor)
    with tqdm(total=len(todo), unit="file", file=sys.stderr, disable=not config.progress) as bar:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            bar.update(len(batch["id"]))


def finish(config: BatchConfig, items: list[dict]) -> tuple[int, int]:
    """All parts -> the output table in id order; -> (rows, failed rows)."""
    table = read_parts(config.output)
    wanted = {item["id"] for item in items}
    rows = {}
    for row in table.to_pylist():
        if row["id"] in wanted and row["id"] not in rows:
            rows[row["id"]] = row
    ordered = [rows[i] for i in sorted(rows)]
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(ordered, schema=SCHEMA), sink)
    write_atomic(config.output, sink.getvalue())
    return len(ordered), sum(r["error"] is not None for r in ordered)


def run_batch(config: BatchConfig) -> BatchSummary:
    config.validate()
    config.output = uris.absolute(config.output)
    uris.ensure_writable(parts_dir(config.output), "--output")
    items, done = plan(config)
    todo = [item for item in items if item["id"] not in done]
    print(f"{len(items)} files, {len(items) - len(todo)} already done, {len(todo)} to transcribe",
          file=sys.stderr)
    if todo:
        model = load(config.model, config.data).require(ASR)
        with ray_session(config.address):
            transcribe_on_ray(config, model, todo)
    rows, failed = finish(config, items)
    return BatchSummary(config.output, len(items), len(items) - len(todo), len(todo), failed)
