"""Atomic versioned records: SIGKILL at random moments, corrupt files, invalid payloads."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from grooverack import storage

TAG, VERSION = "test-record", 1

# A writer that saves generation n+1, n+2, ... of a record until it is killed. Each payload is
# large enough (~200 kB) that a kill often lands mid-write, and carries a digest of its own
# content so that a file mixing two generations is detected.
WRITER = r"""
import hashlib, sys
from grooverack import storage
path = sys.argv[1]
try:
    n = storage.load_record(path, "test-record", 1)["n"]
except storage.RecordError:
    n = 0
sys.stdout.write("started\n"); sys.stdout.flush()
while True:
    n += 1
    blob = hashlib.sha256(str(n).encode()).hexdigest() * 3000
    storage.save_record(path, "test-record", 1, {"n": n, "blob": blob,
                        "digest": hashlib.sha256(blob.encode()).hexdigest()})
"""


def check_record(path: Path) -> int:
    """The generation in a record file; fails the test on a partial or mixed file."""
    record = json.loads(path.read_bytes())
    assert record["tag"] == TAG and record["version"] == VERSION, path
    payload = record["payload"]
    n = payload["n"]
    assert payload["blob"] == hashlib.sha256(str(n).encode()).hexdigest() * 3000, path
    assert payload["digest"] == hashlib.sha256(payload["blob"].encode()).hexdigest(), path
    return n


@pytest.mark.slow
def test_sigkill_during_saves_leaves_old_or_new(tmp_path):
    rng = random.Random(1234)
    path = tmp_path / "record.json"
    bak = tmp_path / "record.json.bak"
    blob = hashlib.sha256(b"0").hexdigest() * 3000
    storage.save_record(path, TAG, VERSION, {"n": 0, "blob": blob,
                                             "digest": hashlib.sha256(blob.encode()).hexdigest()})
    last = check_record(path)
    kills = 0
    reads = 0
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    # 150 kills, and on a loaded machine (a writer slow to get going) more until 50 saves were
    # made and killed around
    while kills < 150 or (last < 50 and kills < 400):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                                env=env)
        assert proc.stdout.readline() == b"started\n"
        deadline = time.monotonic() + rng.uniform(0.0, 0.06)
        while time.monotonic() < deadline:  # a reader during the writes sees old or new only
            n = check_record(path)
            assert n >= last
            last = n
            reads += 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        kills += 1
        n = check_record(path)
        assert n >= last, f"generation went back from {last} to {n}"
        last = n
        if bak.exists():
            assert check_record(bak) <= n
    assert last >= 50, f"only {last} saves in {kills} runs: the writer never got going"
    assert reads > 0
    print(f"{kills} SIGKILLs, {last} saves, {reads} concurrent reads: every file old or new")
    # temp files of killed writers are removed by the next writer: at most the last one's remain
    storage.save_record(path, TAG, VERSION, json.loads(path.read_bytes())["payload"])
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_invalid_payload_never_replaces_a_good_file(tmp_path):
    path = tmp_path / "r.json"

    def validate(payload):
        if payload.get("x", 0) < 0:
            raise ValueError(f"x = {payload['x']}: must be >= 0")

    storage.save_record(path, TAG, VERSION, {"x": 1}, validate)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="x = -1"):
        storage.save_record(path, TAG, VERSION, {"x": -1}, validate)
    assert path.read_bytes() == before
    with pytest.raises(storage.RecordError, match="r.json"):
        storage.save_record(path, TAG, VERSION, {"x": float("nan")})
    assert path.read_bytes() == before


def test_corrupt_file_falls_back_to_previous_good_copy(tmp_path, caplog):
    path = tmp_path / "r.json"
    storage.save_record(path, TAG, VERSION, {"x": 1})
    storage.save_record(path, TAG, VERSION, {"x": 2})
    assert storage.load_record(path, TAG, VERSION) == {"x": 2}
    path.write_bytes(path.read_bytes()[:20])  # torn file
    assert storage.load_record(path, TAG, VERSION) == {"x": 1}
    assert "r.json" in caplog.text and "previous good copy" in caplog.text
    # saving over a corrupt file keeps the good backup
    storage.save_record(path, TAG, VERSION, {"x": 3})
    assert storage.load_record(path.with_name("r.json.bak"), TAG, VERSION) == {"x": 1}
    assert storage.load_record(path, TAG, VERSION) == {"x": 3}


def test_corrupt_without_copy_uses_defaults_or_names_the_file(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"tag": "other", "version": 1, "payload": {}}')
    with pytest.raises(storage.RecordError, match=r"r\.json.*not a test-record file"):
        storage.load_record(path, TAG, VERSION)
    assert storage.load_record(path, TAG, VERSION, default=lambda: {"d": 1}) == {"d": 1}
    path.write_text('{"tag": "test-record", "version": true, "payload": {}}')
    with pytest.raises(storage.RecordError, match="version True"):
        storage.load_record(path, TAG, VERSION)
    path.write_text('{"tag": "test-record", "version": 2, "payload": {}}')
    with pytest.raises(storage.RecordError, match="reads version 1"):
        storage.load_record(path, TAG, VERSION)
    payload, used, errors = storage.read_record(tmp_path / "missing.json", TAG, VERSION)
    assert payload is None and used is None and errors == []


def test_stale_temp_of_a_dead_writer_is_removed_live_one_kept(tmp_path):
    path = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = tmp_path / f".r.json.{proc.pid}.abc.tmp"
    alive = tmp_path / f".r.json.{os.getpid()}.xyz.tmp"
    dead.write_text("partial")
    alive.write_text("partial")
    storage.save_record(path, TAG, VERSION, {"x": 1})
    assert not dead.exists() and alive.exists()


def test_replacing_a_file_keeps_its_mode_and_owner(tmp_path):
    path = tmp_path / "r.json"
    storage.save_record(path, TAG, VERSION, {"x": 1})
    assert path.stat().st_mode & 0o777 == 0o644   # readable by the service user, not 0600
    os.chmod(path, 0o640)
    if os.geteuid() == 0:
        os.chown(path, 1234, 1234)   # a file owned by the service user, rewritten by root
    storage.save_record(path, TAG, VERSION, {"x": 2})
    st = path.stat()
    assert st.st_mode & 0o777 == 0o640
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (1234, 1234)
        bak = path.with_name("r.json.bak")
        assert (bak.stat().st_uid, bak.stat().st_gid) == (tmp_path.stat().st_uid,
                                                          tmp_path.stat().st_gid)
