"""Every file is accounted for: phone, camera and scanner formats are ingested, camera RAW and other
files are named as skipped, and animated GIF / WebP / APNG are motion pins sampled like videos."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from PIL import Image

import pinembed.ingestion.image_decode  # noqa: F401  (registers pillow-heif's HEIF codec with PIL)
from pinembed.cli.main import cli

from helpers import save_image, write

COLOURS = [(230, 20, 20), (20, 230, 20), (20, 20, 230)]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def animation(path, fmt, durations=(500, 1000, 1500)):
    frames = [Image.new("RGB", (64, 48), c) for c in COLOURS[: len(durations)]]
    for i, f in enumerate(frames):
        f.paste((255, 255, 255), (i * 16, 0, i * 16 + 16, 16))
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=list(durations), loop=0)
    return path


@pytest.fixture()
def photos(tmp_path):
    src = tmp_path / "photos"
    save_image(src / "phone.heic", fmt="HEIF")
    save_image(src / "modern.avif", fmt="AVIF")
    save_image(src / "scan.jp2", fmt="JPEG2000")
    save_image(src / "scan.ppm", fmt="PPM")
    save_image(src / "scan.pgm", fmt="PPM", mode="L")
    save_image(src / "scan.pbm", fmt="PPM", mode="1")
    save_image(src / "iphone-export.jpg", fmt="HEIF")  # HEIC data named .jpg
    write(src / "camera" / "IMG_0001.CR2", b"II*\x00\x10\x00\x00\x00CR\x02\x00" + b"\x00" * 64)
    write(src / "camera" / "IMG_0002.dng", b"II*\x00" + b"\x00" * 64)
    write(src / "notes.pdf", b"%PDF-1.7\n...")
    write(src / "report.jpg", b"%PDF-1.7\n...")  # a PDF named .jpg
    return src


def test_phone_camera_and_scanner_formats(photos, db, tiny_model_id):
    r = run("ingest", photos, "--db", db, "--model", tiny_model_id, "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == 3, r.output  # report.jpg fails
    assert out["added"] == 7 and out["failed"] == 1 and out["warnings"] == 1
    from pinembed import open_index

    assert open_index(db).stats()["by_kind"] == {"image": 7}
    (fail,) = out["failures"]
    assert fail["pin_id"] == "report.jpg" and "the data is a PDF document" in fail["message"]
    (warn,) = out["warning_rows"]
    assert warn["pin_id"] == "iphone-export.jpg" and "HEIC/HEIF data named .jpg" in warn["message"]
    skipped = {os.path.basename(f["path"]): f["reason"] for f in out["skipped_files"]}
    assert skipped == {"IMG_0001.CR2": "camera_raw", "IMG_0002.dng": "camera_raw", "notes.pdf": "not_media"}
    assert out["skipped"] == 3


def test_the_terminal_names_skips_in_one_line_and_lists_them_on_request(photos, db, tiny_model_id):
    r = run("ingest", photos, "--db", db, "--model", tiny_model_id)
    lines = [ln for ln in r.stderr.splitlines() if "skipped" in ln]
    assert len(lines) == 1 and "2 camera raw, 1 not media" in lines[0] and "--list-skipped" in lines[0]
    assert "warning: iphone-export.jpg" in r.stderr and "rename it to .heic" not in r.stderr  # hint in the ledger
    r = run("ingest", photos, "--db", db, "--list-skipped")
    assert "IMG_0001.CR2: [camera_raw] camera RAW (.cr2) is not decoded" in r.stderr
    assert "notes.pdf: [not_media]" in r.stderr
    assert "skipped 3" in r.stdout


def test_animations_are_motion_pins_sampled_like_videos(tmp_path, db, tiny_model_id):
    src = tmp_path / "media"
    animation(src / "anim.gif", "GIF")
    animation(src / "anim.webp", "WEBP")
    animation(src / "anim.png", "PNG")  # APNG
    animation(src / "still.gif", "GIF", durations=(500,))  # one frame: stays an image
    save_image(src / "photo.jpg")
    r = run("ingest", src, "--db", db, "--model", tiny_model_id, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["added"] == 5

    from pinembed import open_index

    idx = open_index(db)
    assert idx.stats()["by_kind"] == {"motion": 3, "image": 2}
    for pid in ("anim.gif", "anim.webp", "anim.png"):
        pin = idx.store.get_pin(pid, with_vector=False, columns=["kind", "n_segments", "duration_s", "width"])
        assert (pin["kind"], pin["n_segments"], pin["width"]) == ("motion", 3, 64), pid
        assert pin["duration_s"] == pytest.approx(3.0)
        frames = sorted(idx.store.segments_of([pid]), key=lambda s: s["seq"])
        # sampled at 0.5, 1.5 and 2.5 s: the frames on screen then start at 0.5, 1.5 and 1.5 s
        assert [(s["kind"], s["t_s"]) for s in frames] == [("frame", 0.5), ("frame", 1.5), ("frame", 1.5)]
    hits = {h.pin_id: h for h in idx.search_text("a green square", k=10)}
    assert hits["anim.gif"].best_t_s in (0.5, 1.5) and hits["still.gif"].best_t_s is None
    assert {h.kind for h in idx.related("photo.jpg", k=4, kinds={"motion"})} == {"motion"}
    r = run("related", "photo.jpg", "--db", db, "--kind", "motion", "--json")
    assert r.exit_code == 0 and all(x["best_t_s"] is not None for x in json.loads(r.stdout)["results"])

    # the signature follows the stored kind: nothing changes on a re-run, and --fps re-embeds the
    # motion pins only (a .gif is planned as an image until it is read)
    again = json.loads(run("ingest", src, "--db", db, "--json").stdout)
    assert (again["unchanged"], again["updated"], again["model_loaded"]) == (5, 0, False)
    changed = json.loads(run("refresh", src, "--db", db, "--fps", "2", "--dry-run", "--json").stdout)
    assert sorted(changed["examples"]["changed"]) == ["anim.gif", "anim.png", "anim.webp"]


def test_an_unknown_kind_is_an_error_never_an_idea_pin(tmp_path, tiny):
    from pinembed.errors import UsageError
    from pinembed.ingestion import kinds
    from pinembed.ingestion.entry import Entry
    from pinembed.ingestion.read import Reader, ReadLimits
    from pinembed.ingestion.video_decode import VideoParams

    with pytest.raises(UsageError, match="unknown media kind 'hologram'"):
        kinds.get("hologram")
    path = save_image(tmp_path / "x.jpg")
    reader = Reader(tiny.preprocess, ReadLimits(), VideoParams(), None)
    with pytest.raises(UsageError):
        reader(Entry("x.jpg", "hologram", str(path), path.stat().st_size, 0))
    assert [k.name for k in kinds.all_kinds()] == list(kinds.NAMES)
    assert kinds.for_extension(".heic").name == "image" and kinds.for_extension(".mov").name == "video"
    assert kinds.for_extension(".cr2") is None


def test_more_formats_pillow_reads_and_messages_that_name_the_format(tmp_path, db, tiny_model_id):
    from helpers import write_psd

    src = tmp_path / "media"
    red, green = Image.new("RGB", (64, 48), COLOURS[0]), Image.new("RGB", (64, 48), COLOURS[1])
    src.mkdir()
    red.save(src / "camera.mpo", "MPO", save_all=True, append_images=[green])  # a stereo pair: the first picture
    red.save(src / "scan.tga")
    red.save(src / "scan.pcx")
    red.save(src / "scan.sgi")
    red.save(src / "texture.dds")
    Image.new("RGBA", (64, 64), COLOURS[2] + (255,)).save(src / "favicon.ico", sizes=[(16, 16), (32, 32), (64, 64)])
    Image.new("RGB", (64, 48), COLOURS[0]).save(src / "pages.tiff", save_all=True, append_images=[green.copy()])  # two pages: an image, not motion
    animation(src / "clip.avifs", "AVIF")  # an AVIF sequence: motion
    write_psd(src / "design.psd", COLOURS[0], (64, 48), layers=2)  # the composite, not the layers
    write_psd(src / "design-export.png", COLOURS[1], (64, 48), layers=2)  # PSD data named .png
    cut = write_psd(tmp_path / "cut.psd", COLOURS[1], (64, 48), layers=2).read_bytes()
    write(src / "cut.png", cut[: len(cut) - 2000])  # a PSD named .png, cut short
    r = run("ingest", src, "--db", db, "--model", tiny_model_id, "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == 3 and out["skipped"] == 0, r.output
    (fail,) = out["failures"]
    assert fail["pin_id"] == "cut.png" and "PSD data named .png" in fail["message"]
    assert "animation" not in fail["message"]

    from pinembed import open_index

    idx = open_index(db)
    kinds_ = {p: idx.store.get_pin(p, with_vector=False, columns=["kind", "width", "n_segments"])
              for p in ("camera.mpo", "scan.tga", "scan.pcx", "scan.sgi", "texture.dds", "favicon.ico",
                        "pages.tiff", "clip.avifs", "design.psd", "design-export.png")}
    assert {p: k["kind"] for p, k in kinds_.items()} == {**{p: "image" for p in kinds_}, "clip.avifs": "motion"}
    assert kinds_["favicon.ico"]["width"] == 64 and kinds_["clip.avifs"]["n_segments"] == 3
    # the first picture / page / composite is what is embedded: the same vector as the plain red image
    v = {p: idx.store.get_pin(p)["vector"] for p in ("camera.mpo", "pages.tiff", "design.psd", "scan.tga")}
    import numpy as np

    assert float(np.dot(v["camera.mpo"], v["scan.tga"])) > 0.99
    assert float(np.dot(v["pages.tiff"], v["scan.tga"])) > 0.99
    assert float(np.dot(v["design.psd"], v["scan.tga"])) > 0.99
