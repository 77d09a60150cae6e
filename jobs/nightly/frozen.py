"""The frozen test split: the benchmark every night scores champion and challenger on.

At the first night the test split's manifest content hash and its speakers are pinned in
<output>/test_split.json. Later nights do not preprocess the test split again (new raw files in it
are ignored), and before training each night checks that

  - the test split's manifest still has the pinned content hash (nobody rewrote the benchmark), and
  - no speaker of the test split appears in the training split (the challenger would be scored on
    voices it was trained on);

either failure stops the night with one line, before anything is trained.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pipeline import uri as uris
from pipeline.errors import UserError
from pipeline.files import read_json, write_json
from pipeline.manifest import read_manifest
from pipeline.split_reader import SplitReader, open_split

FROZEN = "test_split.json"


def split_speakers(split_uri: str) -> set[str]:
    """Speakers of a preprocessed split, read from its shards' speaker column alone."""
    speakers: set[str] = set()
    for shard in SplitReader(open_split(split_uri), ["speaker"], why="the frozen test split").shards():
        speakers.update(s for s in shard["speaker"] if s)
    return speakers


def read_frozen(output: str) -> dict | None:
    try:
        return read_json(uris.join(output, FROZEN))
    except FileNotFoundError:
        return None


def freeze(output: str, test_uri: str) -> dict:
    """Pin the test split as it is now (the first night)."""
    frozen = {"test_split": test_uri, "content_hash": read_manifest(test_uri)["content_hash"],
              "speakers": sorted(split_speakers(test_uri)),
              "frozen_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_json(uris.join(output, FROZEN), frozen)
    return frozen


def check(frozen: dict, test_uri: str, train_uris: list[str]) -> None:
    """UserError (one line) when the test split changed since it was frozen or a training split
    holds one of its speakers."""
    if test_uri != frozen["test_split"]:
        raise UserError(f"the test split is {test_uri}, but the nightly froze {frozen['test_split']} "
                        f"on {frozen['frozen_at']}: score every night on the same split")
    current = read_manifest(test_uri)["content_hash"]
    if current != frozen["content_hash"]:
        raise UserError(f"the test split {test_uri} changed since it was frozen on {frozen['frozen_at']} "
                        f"(content hash {current[:12]} != {frozen['content_hash'][:12]}): nights would be "
                        "scored on different benchmarks; restore it, or start a new nightly output")
    test_speakers = set(frozen["speakers"])
    for train_uri in train_uris:
        shared = sorted(split_speakers(train_uri) & test_speakers)
        if shared:
            raise UserError(f"the training split {train_uri} holds {len(shared)} speaker(s) of the frozen test "
                            f"split ({', '.join(shared[:5])}{', ...' if len(shared) > 5 else ''}): the "
                            "challenger would be scored on voices it was trained on; move their data out")
