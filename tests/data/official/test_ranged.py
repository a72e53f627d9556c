"""Fetching only the kept drawings (Range requests), bounded downloads and locked cache entries.

Against a local fake of the bucket (tests/quickdraw_server.py) serving full-size class
files made on demand: row i of a class carries its label in pixel 0 and i in pixels 1..3.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from doodlelab.data import course
from doodlelab.data.official.download import DownloadError, download_class
from doodlelab.data.official.fetch import build_course_folder
from doodlelab.data.official.ranged import plan_blocks, sample_class
from tests.quickdraw_server import VirtualClass, row_ids

FULL_ROWS = 100_000  # an official class file holds 100k-300k drawings


def serve_virtual(server, rows=FULL_ROWS):
    files = {name: VirtualClass(rows + 1000 * k, k) for k, name in enumerate(course.CLASSES)}
    server.files.update(files)
    return files


def test_fetching_1000_of_100k_rows_per_class_moves_under_twice_the_kept_bytes(server, tmp_path):
    files = serve_virtual(server)
    out = tmp_path / "course"
    build_course_folder(course.CLASSES, out, 800, 200, seed=3, cache_dir=tmp_path / "cache",
                        base_url=server.url, progress=False)
    kept = 5 * 1000 * 784
    assert kept < server.sent <= 2 * kept  # the whole files would be 5 x 78 MB
    assert all(rng is not None and rng.startswith("bytes=") for _, rng in server.requests)
    train, test = course.load_split(out, "train"), course.load_split(out, "test")
    assert np.bincount(train.y).tolist() == [800] * 5 and np.bincount(test.y).tolist() == [200] * 5
    for split in ("train", "test"):
        images = np.load(out / f"{split}_images.npy")
        labels = np.load(out / f"{split}_labels.npy")
        ids = row_ids(images)
        for k, name in enumerate(course.CLASSES):
            mine = labels == k
            # every image is exactly the served row it claims to be, of the right class
            assert np.array_equal(images[mine].reshape(-1, 784), files[name].pixels(ids[mine]))
    for k in range(5):
        tr = set(row_ids(np.load(out / "train_images.npy"))[np.load(out / "train_labels.npy") == k])
        te = set(row_ids(np.load(out / "test_images.npy"))[np.load(out / "test_labels.npy") == k])
        assert len(tr) == 800 and len(te) == 200 and not tr & te
        spread = sorted(tr | te)
        assert spread[0] < FULL_ROWS // 10 and spread[-1] > FULL_ROWS * 9 // 10  # over the whole file


def test_a_server_without_range_gives_the_same_folder(server, tmp_path):
    serve_virtual(server, rows=3000)
    build_course_folder(course.CLASSES, tmp_path / "ranged", 40, 10, seed=5, cache_dir=tmp_path / "c1",
                        base_url=server.url, progress=False)
    server.ranges = False
    build_course_folder(course.CLASSES, tmp_path / "whole", 40, 10, seed=5, cache_dir=tmp_path / "c2",
                        base_url=server.url, progress=False)
    assert (tmp_path / "c2" / "rabbit.npy").stat().st_size == len(server.files["rabbit"])
    for fname in ("train_images.npy", "train_labels.npy", "test_images.npy", "test_labels.npy"):
        assert (tmp_path / "ranged" / fname).read_bytes() == (tmp_path / "whole" / fname).read_bytes()


def test_classes_fetched_at_once_give_the_same_folder_as_one_at_a_time(server, tmp_path, monkeypatch):
    import doodlelab.data.official.fetch as fetch

    serve_virtual(server, rows=3000)
    busy, most, lock = [0], [0], threading.Lock()

    def counted(*args, **kwargs):  # how many classes are being fetched at once
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        try:
            return sample_class(*args, **kwargs)
        finally:
            with lock:
                busy[0] -= 1

    monkeypatch.setattr(fetch, "sample_class", counted)
    build_course_folder(course.CLASSES, tmp_path / "one", 40, 10, seed=5, cache_dir=tmp_path / "c1",
                        base_url=server.url, progress=False, jobs=1)
    assert most[0] == 1
    server.delay = 0.02  # a round trip, so that the fetches of several classes overlap
    build_course_folder(course.CLASSES, tmp_path / "four", 40, 10, seed=5, cache_dir=tmp_path / "c4",
                        base_url=server.url, progress=False, jobs=4)
    assert most[0] == 4
    for fname in ("train_images.npy", "train_labels.npy", "test_images.npy", "test_labels.npy",
                  "classes.json"):
        assert (tmp_path / "one" / fname).read_bytes() == (tmp_path / "four" / fname).read_bytes()


def test_a_failing_class_stops_the_fetch_and_writes_no_folder(server, tmp_path, capsys):
    from doodlelab.cli.commands import main

    serve_virtual(server, rows=3000)
    del server.files["hand"]  # the third class: a 404
    with pytest.raises(DownloadError, match="hand"):
        build_course_folder(course.CLASSES, tmp_path / "out", 40, 10, cache_dir=tmp_path / "c",
                            base_url=server.url, progress=False, jobs=2)
    assert not (tmp_path / "out").exists()
    assert main(["fetch", "--out", str(tmp_path / "out"), "--url", server.url, "--jobs", "0"]) == 2
    assert "jobs must be a whole number >= 1" in capsys.readouterr().err


def test_block_plan_covers_the_need_in_spread_disjoint_blocks():
    plan = plan_blocks(100_000, 5000, seed=0, name="cat")
    ids = plan.row_ids()
    assert 5000 <= ids.size < 5000 + plan.block and len(plan.starts) <= 48
    assert np.all(np.diff(ids) > 0) and ids[-1] < 100_000  # distinct, in file order, inside the file
    assert plan_blocks(100_000, 5000, 0, "cat").key() == plan.key()
    other_seed, other_class = plan_blocks(100_000, 5000, 1, "cat"), plan_blocks(100_000, 5000, 0, "dog")
    assert other_seed.key() != plan.key() != other_class.key()
    everything = plan_blocks(1000, 990, 0, "cat")
    assert np.array_equal(everything.row_ids(), np.arange(1000))


def test_an_interrupted_sample_resumes_after_its_last_whole_block(server, tmp_path):
    server.files["hand"] = VirtualClass(FULL_ROWS, 2)
    server.cut_after = 5000  # every answer stops after 5000 bytes: the first block arrives cut
    with pytest.raises(DownloadError, match="run the command again to resume"):
        sample_class("hand", 2000, 0, tmp_path, server.url, progress=False)
    parts = list((tmp_path / "samples").glob("*.part"))
    assert len(parts) == 1 and parts[0].stat().st_size == 0  # no partial block is kept as data
    server.cut_after = None
    plan = plan_blocks(FULL_ROWS, 2000, 0, "hand")
    block_bytes = plan.block * 784
    with open(parts[0], "wb") as fh:  # as if killed after two blocks and a half
        fh.write(VirtualClass(FULL_ROWS, 2).pixels(plan.row_ids()[: 2 * plan.block]).tobytes())
        fh.write(b"\0" * (block_bytes // 2))
    server.requests.clear()
    sample = sample_class("hand", 2000, 0, tmp_path, server.url, progress=False)
    assert len(server.requests) == 1 + len(plan.starts) - 2  # header, then only the missing blocks
    assert np.array_equal(sample.pixels, VirtualClass(FULL_ROWS, 2).pixels(plan.row_ids()))
    assert not list((tmp_path / "samples").glob("*.part"))


def test_a_download_without_content_length_stops_at_the_size_limit(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DOODLELAB_MAX_CLASS_MB", "1")
    server.files["rabbit"] = VirtualClass(4000, 0)  # 3.1 MB, more than the 1 MiB limit
    server.content_length = False
    with pytest.raises(DownloadError, match="larger than 1048576 bytes") as excinfo:
        download_class("rabbit", tmp_path, server.url, progress=False, chunk_size=64 << 10)
    assert "\n" not in str(excinfo.value)
    assert not list(tmp_path.glob("rabbit.npy*"))  # nothing of an oversized file is kept
    server.content_length = True  # an announced size over the limit is refused before any byte
    with pytest.raises(DownloadError, match="announces 3136128 bytes"):
        download_class("rabbit", tmp_path, server.url, progress=False)
    assert not list(tmp_path.glob("rabbit.npy*"))  # refused before writing a byte


def test_a_failed_resume_keeps_the_valid_part(server, tmp_path):
    data = VirtualClass(2000, 1)
    server.files["yoga"] = data
    part = tmp_path / "yoga.npy.part"
    part.write_bytes(data[0:100_000])
    server.ranges, server.cut_after = False, 50_000  # restarts from zero, then is cut shorter
    with pytest.raises(DownloadError, match="cut off"):
        download_class("yoga", tmp_path, server.url, progress=False)
    assert part.read_bytes() == data[0:100_000]  # the longer valid progress survived
    server.cut_after = 150_000  # this time the restart gets further than the part had
    with pytest.raises(DownloadError, match="cut off"):
        download_class("yoga", tmp_path, server.url, progress=False)
    assert part.read_bytes() == data[0:150_000]
    server.ranges, server.cut_after = True, None
    assert download_class("yoga", tmp_path, server.url, progress=False).read_bytes() == data[0:len(data)]


FETCH = """
import sys
from doodlelab.data.official.download import download_class
print(download_class("snowman", sys.argv[1], sys.argv[2], progress=False).stat().st_size)
"""


def test_two_concurrent_fetches_of_one_class_never_leave_a_corrupt_file(server, tmp_path):
    from doodlelab.data.official.download import cache_entry_lock

    data = VirtualClass(6000, 3)
    server.files["snowman"] = data
    with cache_entry_lock(tmp_path, "snowman"):  # both processes start, and both must wait
        procs = [subprocess.Popen([sys.executable, "-c", FETCH, str(tmp_path), server.url],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        assert all("waiting for another process" in p.stderr.readline() for p in procs)
    outs = [p.communicate(timeout=120) for p in procs]  # released: they race for the entry
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [int(o[0]) for o in outs] == [len(data)] * 2
    assert (tmp_path / "snowman.npy").read_bytes() == data[0:len(data)]
    assert len(server.requests) == 1  # the second found the first one's whole file


def test_the_lock_is_held_while_a_fetch_runs(server, tmp_path):
    from doodlelab.data.official.download import cache_entry_lock

    server.files["hand"] = VirtualClass(500, 2)
    done = threading.Event()

    def fetch() -> None:
        download_class("hand", tmp_path, server.url, progress=False)
        done.set()

    with cache_entry_lock(tmp_path, "hand"):
        thread = threading.Thread(target=fetch)
        thread.start()
        time.sleep(0.3)
        assert not done.is_set() and server.requests == []  # it waits for the holder
    thread.join(30)
    assert done.is_set() and len(server.requests) == 1
