"""Webdataset tar shards as a source (ingestion/shards.py): shards written here with tarfile in
img2dataset's layout (000123.jpg + .json + .txt per sample), walked in a folder and under an s3://
prefix (moto's server), read member by member, and ingested by the user's own command."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from PIL import Image

import pinembed
from pinembed.cli.main import cli
from pinembed.errors import InputError
from pinembed.ingestion import object_media
from pinembed.ingestion.discover import discover

from helpers import write_video
from s3 import isolate, moto_server

MTIME = 1_700_000_000


def image_bytes(colour, fmt="JPEG", size=(40, 32)) -> bytes:
    buf = io.BytesIO()
    im = Image.new("RGB", size, colour)
    im.paste((255, 255, 255), (0, 0, size[0] // 4, size[1] // 4))
    im.save(buf, fmt)
    return buf.getvalue()


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """A tar of ``members`` (name, bytes) in this order, as webdataset's TarWriter writes one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), MTIME
            tf.addfile(ti, io.BytesIO(data))
    return path


def img2dataset_sample(key: str, colour, caption: str, **fields) -> list[tuple[str, bytes]]:
    """One sample as img2dataset writes it: the image, its JSON (with width/height, pin fields) and TXT."""
    doc = {"url": f"https://example.com/{key}.jpg", "key": key, "status": "success", "error_message": None,
           "caption": caption, "width": 40, "height": 32, "original_width": 400, "original_height": 320,
           "exif": {"Make": "Test"}, "sha256": hashlib.sha256(key.encode()).hexdigest(), **fields}
    return [(f"{key}.jpg", image_bytes(colour)), (f"{key}.json", json.dumps(doc).encode()),
            (f"{key}.txt", caption.encode())]


def img2dataset_shard(path: Path, first: int, n: int, **fields) -> Path:
    members = []
    for i in range(first, first + n):
        members += img2dataset_sample(f"{i:09d}", (40 * i % 256, 90, 200 - 30 * i % 200), f"caption {i}", **fields)
    return write_tar(path, members)


def by_id(found) -> dict:
    return {e.pin_id: e for e in found.entries}


def errors(found) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in found.problems:
        out.setdefault(p.error, []).append(p.message)
    return out


def skips(found) -> set[tuple[str, str]]:
    return {(s.path, s.reason) for s in found.skips}


def member_bytes(shard: Path, name: str) -> bytes:
    with tarfile.open(shard) as tf:
        return tf.extractfile(name).read()


def test_the_walk_finds_one_pin_per_sample(tmp_path):
    src = tmp_path / "media"
    a = img2dataset_shard(src / "00000.tar", 0, 3)
    b = write_tar(src / "part" / "00001.tar", [
        ("deep/x1.png", image_bytes((0, 200, 0), "PNG")),
        ("deep/x1.json", json.dumps({"pin_id": "catalog-7", "title": "Green", "description": "a green pin"}).encode()),
        ("deep/x2.webp", image_bytes((0, 0, 200), "WEBP")),
        ("deep/x2.txt", b"Blue title\nthe blue one\nsecond line"),
        ("deep/x3.a.jpg", image_bytes((9, 9, 9))),  # webdataset's rule: key deep/x3, extension a.jpg
        ("deep/x3.json", json.dumps({"pin_id": 12}).encode()),  # an integer id is taken as its digits
    ])
    Image.new("RGB", (8, 8)).save(src / "plain.jpg")
    found = discover(src, id_prefix="web")
    assert found.problems == [], found.problems
    e = by_id(found)
    assert set(e) == {"web/000000000", "web/000000001", "web/000000002", "web/catalog-7", "web/deep/x2",
                      "web/12", "web/plain.jpg"}
    first = e["web/000000000"]
    assert (first.kind, first.file, first.title, first.description) == ("image", f"{a}#000000000.jpg", "caption 0", None)
    assert first.size == len(member_bytes(a, "000000000.jpg")) and first.mtime_ns == MTIME * 10**9
    assert (e["web/catalog-7"].file, e["web/catalog-7"].title, e["web/catalog-7"].description) == (
        f"{b}#deep/x1.png", "Green", "a green pin")
    assert (e["web/deep/x2"].title, e["web/deep/x2"].description) == ("Blue title", "the blue one\nsecond line")
    assert e["web/12"].file == f"{b}#deep/x3.a.jpg"
    assert found.skips == [] or {s.reason for s in found.skips} == {"not_an_attribute"}

    # a shard written again with the same samples: the same signatures; an edited caption changes one
    sigs = {k: v.source_sig for k, v in e.items()}
    img2dataset_shard(src / "00000.tar", 0, 3)
    assert {k: v.source_sig for k, v in by_id(discover(src, id_prefix="web")).items()} == sigs
    members = img2dataset_sample("000000000", (0, 90, 200), "caption 0") + img2dataset_sample(
        "000000001", (40, 90, 170), "caption one, edited")
    write_tar(src / "00000.tar", members + img2dataset_sample("000000002", (80, 90, 140), "caption 2"))
    again = {k: v.source_sig for k, v in by_id(discover(src, id_prefix="web")).items()}
    assert {k for k in sigs if again[k] != sigs[k]} == {"web/000000001"}


def test_json_fields_become_typed_attributes(tmp_path):
    src = tmp_path / "media"
    img2dataset_shard(src / "00000.tar", 0, 2, aesthetic=5, tags=["red", "square"], nsfw=False)
    img2dataset_shard(src / "00001.tar", 2, 2, aesthetic=6.5, tags=[], nsfw=True)
    write_tar(src / "00002.tar", img2dataset_sample("000000004", (1, 2, 3), "four", aesthetic=7, nsfw="no"))
    found = discover(src)
    assert found.problems == []
    types = found.attributes
    assert types == {"url": pa.string(), "key": pa.string(), "status": pa.string(), "original_width": pa.int64(),
                     "original_height": pa.int64(), "sha256": pa.string(), "aesthetic": pa.float64(),
                     "tags": pa.list_(pa.string()), "nsfw": pa.bool_()}, types
    e = by_id(found)
    first = e["000000000"].attrs
    assert first["url"] == "https://example.com/000000000.jpg" and first["original_width"] == 400
    assert first["aesthetic"] == 5.0 and isinstance(first["aesthetic"], float)  # int and float: a float
    assert first["tags"] == ["red", "square"] and first["nsfw"] is False and first["error_message"] is None
    assert "caption" not in first and "width" not in first and "exif" not in first  # the title; pin fields
    assert e["000000002"].attrs["aesthetic"] == 6.5 and e["000000004"].attrs["aesthetic"] == 7.0
    # a string where other shards gave a bool: the pin lands without it, with a warning naming both types
    late = e["000000004"]
    assert "nsfw" not in late.attrs
    [note] = late.notes
    assert note.error == "attr_type" and "'nsfw'" in note.message and "string" in note.message and "bool" in note.message
    # img2dataset's pin fields and its exif object: named once per shard
    named = [(s.path.rsplit("#", 1)[1], s.message) for s in found.skips if s.reason == "not_an_attribute"]
    assert sorted(n for n, _ in named) == sorted(["field=width", "field=height", "field=exif"] * 3)
    assert any("pin field" in m for n, m in named if n == "field=width")
    assert any("no attribute type" in m for n, m in named if n == "field=exif")


def test_damaged_shards_keep_what_was_read_and_say_where(tmp_path):
    src = tmp_path / "media"
    whole = img2dataset_shard(tmp_path / "whole.tar", 0, 4)
    data = whole.read_bytes()
    with tarfile.open(whole) as tf:
        third = tf.getmember("000000002.jpg")
    src.mkdir()
    (src / "cut.tar").write_bytes(data[: third.offset_data + 100])  # inside the third sample's image
    other = img2dataset_shard(tmp_path / "other.tar", 10, 4)
    with tarfile.open(other) as tf:
        at = tf.getmember("000000012.jpg").offset
    corrupt = bytearray(other.read_bytes())
    corrupt[at: at + 100] = b"\x7f" * 100  # the third sample's first header
    (src / "corrupt.tar").write_bytes(bytes(corrupt))
    (src / "noise.tar").write_bytes(b"this is not a tar file at all" * 40)
    (src / "empty.tar").write_bytes(b"")
    found = discover(src, id_prefix="p")
    shard_rows = {Path(p.path).name: p for p in found.problems if p.error == "unreadable_shard"}
    assert set(shard_rows) == {"cut.tar", "corrupt.tar", "noise.tar", "empty.tar"}, found.problems
    for name in shard_rows:
        assert shard_rows[name].pin_id == f"p/{name}" and "cannot be read past byte" in shard_rows[name].message
    # cut inside the third sample's image: the two samples before it land, the one being read does not
    assert "kept the 2 samples read before it; sample '000000002', being read there, is left out" in (
        shard_rows["cut.tar"].message)
    # the third sample's header broken: the second sample might have gone on past it, so it is left out too
    assert "not a valid tar header" in shard_rows["corrupt.tar"].message
    assert "kept the 1 sample read before it; sample '000000011'" in shard_rows["corrupt.tar"].message
    assert {e.file.rsplit("/", 1)[1] for e in found.entries} == {
        "cut.tar#000000000.jpg", "cut.tar#000000001.jpg", "corrupt.tar#000000010.jpg"}
    assert "not a tar file" in shard_rows["noise.tar"].message and "empty" in shard_rows["empty.tar"].message


def test_bad_samples_and_hostile_names_are_problems_or_named_skips(tmp_path):
    src = tmp_path / "media"
    jpg, png = image_bytes((200, 0, 0)), image_bytes((0, 200, 0), "PNG")
    shard = write_tar(src / "bad.tar", [
        ("a.json", b'{"title": "no media here"}'), ("a.txt", b"a"),
        ("b.jpg", jpg), ("b.png", png), ("b.cls", b"3"), ("b.npy", b"\x93NUMPY"),
        ("c.jpg", jpg), ("c.json", b'{"pin_id": "  "}'),
        ("d.jpg", jpg), ("d.json", b"{not json"),
        ("e.jpg", jpg), ("e.txt", b"E"), ("b.txt", b"b again, after other samples"),
        ("/etc/evil.jpg", jpg), ("../up.jpg", jpg), ("x/../../up2.jpg", jpg), ("ctl\x01.jpg", jpg),
        ("bad\udcff.jpg", jpg), ("._e.jpg", b"AppleDouble"), ("README", b"readme"),
    ])
    found = discover(src)
    got = errors(found)
    assert [e.pin_id for e in found.entries] == ["b", "e"]
    assert by_id(found)["e"].title == "E"
    assert any("'a'" in m and ".json, .txt" in m for m in got["no_media"])
    assert len(got["bad_id"]) == 1 and f"{shard}: sample 'c'" in got["bad_id"][0] and "empty" in got["bad_id"][0]
    assert len(got["bad_json"]) == 1 and "sample 'd'" in got["bad_json"][0]
    assert len(got["duplicate_id"]) == 1 and "consecutive" in got["duplicate_id"][0]
    assert len(got["bad_name"]) == 5, got["bad_name"]
    assert {"an absolute path", "'..'", "control character", "UTF-8"} <= {
        w for m in got["bad_name"] for w in ("an absolute path", "'..'", "control character", "UTF-8") if w in m}
    assert skips(found) == {(f"{shard}#b.png", "extra_media"), (f"{shard}#b.cls", "not_media"),
                            (f"{shard}#b.npy", "not_media"), (f"{shard}#._e.jpg", "hidden"),
                            (f"{shard}#README", "not_media")}
    assert list(src.iterdir()) == [shard]  # nothing was extracted


def test_an_entrys_media_reads_exactly_its_member(tmp_path):
    src = tmp_path / "media"
    clip = write_video(tmp_path / "clip.mp4", w=64, h=48, secs=1.0, fps=8).read_bytes()
    shard = write_tar(src / "s.tar", [("v.mp4", clip), ("v.txt", b"a clip"),
                                      *img2dataset_sample("000000001", (1, 2, 3), "one")])
    found = discover(src)
    e = by_id(found)
    video, image = e["v"], e["000000001"]
    assert video.kind == "video" and video.title == "a clip"
    want = member_bytes(shard, "000000001.jpg")
    assert image.media.read(image.file, len(want)) == want
    assert image.media.read_head(image.file, 10) == want[:11]  # at most limit + 1
    with pytest.raises(InputError) as err:
        image.media.read(image.file, len(want) - 1)
    assert err.value.error == "too_large"
    assert image.media.digest(image.file) == hashlib.blake2b(want, digest_size=16).hexdigest()
    with video.media.local_copy(video.file, len(clip)) as local:
        assert local.endswith(".mp4") and Path(local).read_bytes() == clip
    assert not Path(local).exists()
    with pytest.raises(InputError), video.media.local_copy(video.file, 100):
        pass
    copy = pickle.loads(pickle.dumps(image))
    assert copy.media.read(copy.file, 1 << 20) == want
    # the shard rewritten since the walk: its byte ranges are other members' now, so they are refused
    img2dataset_shard(shard, 5, 2)
    with pytest.raises(OSError, match="changed since it was walked"):
        image.media.read(image.file, 1 << 20)


@pytest.fixture()
def s3(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)
    with moto_server() as server:
        server.create_bucket("web")
        yield server


def test_shards_under_an_s3_prefix(s3, tmp_path):
    local = img2dataset_shard(tmp_path / "00000.tar", 0, 3, aesthetic=1.5)
    data = local.read_bytes()
    client = s3.client()
    client.put_object(Bucket="web", Key="shards/00000.tar", Body=data)
    client.put_object(Bucket="web", Key="shards/cut/00001.tar", Body=data[: len(data) // 2])
    client.put_object(Bucket="web", Key="shards/readme.md", Body=b"notes")
    before = object_media.reads
    found = discover("s3://web/shards/", "", s3.options())
    assert object_media.reads - before == 2  # one streaming GET per shard
    e = by_id(found)
    assert set(e) >= {"000000000", "000000001", "000000002"}
    first = e["000000000"]
    assert first.file == "s3://web/shards/00000.tar#000000000.jpg" and first.title == "caption 0"
    assert first.attrs["aesthetic"] == 1.5 and found.attributes["aesthetic"] == pa.float64()
    [cut] = [p for p in found.problems if p.error == "unreadable_shard"]
    assert cut.path == "s3://web/shards/cut/00001.tar" and "cannot be read past byte" in cut.message
    assert ("s3://web/shards/readme.md", "not_media") in skips(found)
    want = member_bytes(local, "000000002.jpg")
    copy = pickle.loads(pickle.dumps(e["000000002"]))  # in another process, as the ray runner does
    before = object_media.reads
    assert copy.media.read(copy.file, 1 << 20) == want
    assert copy.media.digest(copy.file) == hashlib.blake2b(want, digest_size=16).hexdigest()
    assert object_media.reads - before == 2  # one ranged GET each
    with pytest.raises(InputError):
        copy.media.read(copy.file, 10)
    # the shard replaced since it was listed: its ETag no longer matches, the range is not read
    client.put_object(Bucket="web", Key="shards/00000.tar", Body=img2dataset_shard(tmp_path / "b.tar", 7, 3).read_bytes())
    with pytest.raises(OSError, match="changed since it was listed"):
        copy.media.read(copy.file, 1 << 20)


def test_ingest_a_folder_of_shards(tmp_path):
    src = tmp_path / "shards"
    img2dataset_shard(src / "00000.tar", 0, 3, aesthetic=5, tags=["a", "b"])
    write_tar(src / "00001.tar", [("000000010.png", image_bytes((0, 200, 0), "PNG")),
                                  ("000000010.json", json.dumps({"title": "Green", "description": "a green pin",
                                                                 "aesthetic": 6.5}).encode()),
                                  ("000000011.txt", b"no media"),
                                  ("000000012.mp4", write_video(tmp_path / "c.mp4", w=64, h=48, secs=1.0, fps=8).read_bytes()),
                                  ("000000012.txt", b"A clip\nits description")])
    db = tmp_path / "pins.lance"
    r = CliRunner().invoke(cli, ["ingest", str(src), "--db", str(db), "--model", "nano", "--json"])
    assert r.exit_code == 3, r.output  # 000000011 has no media: a ledger row
    s = json.loads(r.stdout)
    assert (s["added"], s["failed"]) == (5, 1), s
    assert [f["error"] for f in s["failures"]] == ["no_media"]
    idx = pinembed.open_index(str(db))
    pins = {p["pin_id"]: p for p in idx.to_arrow(columns=["pin_id", "title", "description", "uri", "kind"]).to_pylist()}
    assert set(pins) == {"000000000", "000000001", "000000002", "000000010", "000000012"}
    assert (pins["000000001"]["title"], pins["000000001"]["uri"]) == ("caption 1", f"{src / '00000.tar'}#000000001.jpg")
    assert (pins["000000010"]["title"], pins["000000010"]["description"]) == ("Green", "a green pin")
    assert (pins["000000012"]["kind"], pins["000000012"]["title"]) == ("video", "A clip")
    assert idx.related("000000010", k=3)  # the pins answer queries
    # the JSON fields are typed columns of the pins (int and float in one field: a float)
    types = idx.attributes()
    assert (types["aesthetic"], types["original_width"], types["url"], types["tags"]) == (
        pa.float64(), pa.int64(), pa.string(), pa.list_(pa.string()))
    assert not {"width", "exif", "caption"} & set(types)
    cols = idx.to_arrow(columns=["pin_id", "aesthetic", "original_width", "url", "tags"]).to_pylist()
    attrs = {p.pop("pin_id"): p for p in cols}
    assert attrs["000000001"] == {"aesthetic": 5.0, "original_width": 400, "url": "https://example.com/000000001.jpg",
                                  "tags": ["a", "b"]}
    assert attrs["000000010"] == {"aesthetic": 6.5, "original_width": None, "url": None, "tags": None}
    # a refresh: nothing changed, nothing read, no model; the sample without media is said again
    r = CliRunner().invoke(cli, ["refresh", str(src), "--db", str(db), "--json"])
    assert r.exit_code == 3, r.output
    s = json.loads(r.stdout)
    assert s["planned"]["unchanged"] == 5 and sum(s["planned"].values()) == 5 and s["model_loaded"] is False, s
    assert [f["error"] for f in s["failures"]] == ["no_media"]

    # a new shard whose field is an int where the database holds a float: its pin lands with a float
    write_tar(src / "00002.tar", img2dataset_sample("000000020", (5, 5, 5), "twenty", aesthetic=7))
    r = CliRunner().invoke(cli, ["refresh", str(src), "--db", str(db), "--json"])
    assert r.exit_code == 3, r.output
    assert json.loads(r.stdout)["added"] == 1
    row = pinembed.open_index(str(db)).to_arrow(columns=["pin_id", "title", "aesthetic"], where={"pin_id": "000000020"})
    assert row.to_pylist() == [{"pin_id": "000000020", "title": "twenty", "aesthetic": 7.0}]
