"""pipeline.files: the one atomic writer, JSON writer and file hash of every command."""

import hashlib
import json
import threading
from datetime import date

import fsspec
import pyarrow as pa

from pipeline.files import (TEMP_PREFIX, json_bytes, read_json, read_json_or_none, sha256_of, write_atomic,
                            write_json)


def test_write_atomic_replaces_whole_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "new" / "folder" / "file.bin"
    write_atomic(str(target), b"first")
    write_atomic(str(target), pa.py_buffer(b"second"))   # any bytes-like buffer
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_concurrent_writers_of_one_file_never_share_a_temp_file(tmp_path):
    """Each writer lands whole: the file holds one writer's bytes, never a mix or a truncation."""
    target = tmp_path / "state.json"
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    threads = [threading.Thread(target=write_atomic, args=(str(target), p)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_bytes() in payloads
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_write_atomic_on_an_object_store_is_one_put():
    uri = "memory://lact-files-test/out/part.bin"
    write_atomic(uri, pa.py_buffer(b"payload"))
    fs = fsspec.filesystem("memory")
    assert fs.cat_file("/lact-files-test/out/part.bin") == b"payload"
    assert fs.ls("/lact-files-test/out", detail=False) == ["/lact-files-test/out/part.bin"]


def test_json_format_sorted_utf8_with_final_newline(tmp_path):
    obj = {"b": 1, "a": {"z": "é", "y": [1, 2]}, "when": date(2024, 1, 2)}
    assert json_bytes(obj) == ('{\n  "a": {\n    "y": [\n      1,\n      2\n    ],\n    "z": "é"\n  },\n'
                               '  "b": 1,\n  "when": "2024-01-02"\n}\n').encode()
    assert json_bytes({"b": 1, "a": 2}, indent=1) == b'{\n "a": 2,\n "b": 1\n}\n'
    path = str(tmp_path / "x.json")
    write_json(path, obj)
    assert read_json(path) == json.loads(json_bytes(obj))
    assert read_json_or_none(str(tmp_path / "absent.json")) is None


def test_sha256_of_a_file(tmp_path):
    data = bytes(range(256)) * 10_000   # more than one read block
    (tmp_path / "f").write_bytes(data)
    assert sha256_of(str(tmp_path / "f")) == hashlib.sha256(data).hexdigest()
