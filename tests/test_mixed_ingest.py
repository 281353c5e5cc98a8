"""End to end: a folder of images, videos, idea pins and bad videos, through the `pinembed` command."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from PIL import Image

from pinembed.cli.main import cli

from helpers import frame_at, save_image, write, write_audio_only, write_idea, write_video

BAD_VIDEOS = {
    "bad/truncated.mp4": "corrupt",
    "bad/empty.mp4": "empty",
    "bad/audio-only.mp4": "no_video_stream",
    "bad/unknown-codec.mp4": "undecodable",
    "bad/huge.mp4": "too_large",
    "bad/text.webm": "corrupt",
}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    src = tmp_path_factory.mktemp("mixed")
    save_image(src / "images" / "red.jpg", colour=(220, 20, 20))
    save_image(src / "images" / "blue.png", colour=(20, 20, 220))
    write_video(src / "videos" / "sunset.mp4", "libx264", secs=10, fps=12, blank_until_s=1.0)
    write_video(src / "videos" / "short.webm", "libvpx-vp9", secs=0.5, fps=12)
    (src / "videos" / "sunset.json").write_text('{"title": "A sunset", "description": "colours turning"}')
    save_image(src / "ideas" / "pasta" / "cover.jpg", colour=(230, 200, 30))
    write_video(src / "ideas" / "pasta" / "steps.mp4", secs=3)
    write_idea(src / "ideas" / "pasta", [{"media": "cover.jpg", "text": "the dish"},
                                         {"media": "steps.mp4", "text": "how to cook it"},
                                         {"media": "../../images/red.jpg"}],
               title="Pasta night", description="quick dinner")
    write(src / "ideas" / "broken" / "pin.json", "{oops")
    good = write_video(src / "bad" / "source.mp4", secs=2)
    data = good.read_bytes()
    good.rename(src / "bad" / "source.mp4.keep")  # not media: skipped
    write(src / "bad" / "truncated.mp4", data[: len(data) // 3])
    write(src / "bad" / "empty.mp4", b"")
    write_audio_only(src / "bad" / "audio-only.mp4")
    write(src / "bad" / "unknown-codec.mp4", data.replace(b"avc1", b"zzzz"))
    write_video(src / "bad" / "huge.mp4", w=8192, h=8192, secs=1, fps=1)
    write(src / "bad" / "text.webm", "I am not a video")
    return src


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_mixed_folder(mixed, db, tiny_model_id, tmp_path):
    r = run("ingest", mixed, "--db", db, "--model", tiny_model_id, "--json")
    assert r.exit_code == 3, r.output
    out = json.loads(r.stdout)
    assert (out["added"], out["updated"], out["unchanged"]) == (5, 0, 0)
    # counts mean what they say: each bad input is one failure, the idea pin with a refused page landed
    # (added, and one warning), and the renamed file is named as skipped
    assert out["failed"] == len(BAD_VIDEOS) + 1 and out["warnings"] == 1 and out["model_loaded"]
    assert [w["error"] for w in out["warning_rows"]] == ["path_escape"]
    assert [(os.path.basename(f["path"]), f["reason"]) for f in out["skipped_files"]] == [("source.mp4.keep", "not_media")]
    assert out["embedded_images"] == 2 + 10 + 1 + 1 + 3 and set(out["stage_s"]) == {"model", "read", "embed", "write", "index"} and out["index"] == "exact"

    from pinembed import open_index

    idx = open_index(db)
    assert idx.stats()["by_kind"] == {"image": 2, "video": 2, "idea": 1}
    sunset = idx.store.get_pin("videos/sunset.mp4", with_vector=False)
    assert sunset["title"] == "A sunset" and sunset["n_segments"] == 10
    frames = sorted(idx.store.segments_of(["videos/sunset.mp4"]), key=lambda s: s["seq"])
    assert [round(s["t_s"], 1) for s in frames] == [0.5 + i for i in range(10)]
    assert [s["weight"] for s in frames] == [0.0] + [1.0] * 9  # the black opening is left out of the pool
    meta = idx.store._pins().search().where("pin_id = 'videos/sunset.mp4'").select(
        ["width", "height", "duration_s", "fps"]).to_list()[0]
    assert (meta["width"], meta["height"]) == (160, 96) and meta["duration_s"] == pytest.approx(10, abs=0.1)
    assert meta["fps"] == pytest.approx(12)
    assert idx.store.get_pin("videos/short.webm", with_vector=False)["n_segments"] == 1
    pasta = sorted(idx.store.segments_of(["ideas/pasta"]), key=lambda s: s["seq"])
    assert [(s["kind"], s["page"]) for s in pasta] == [("page", 0), ("page", 1), ("text", None), ("text", 0),
                                                        ("text", 1)]

    ledger = {f["uri"].split(str(mixed) + "/", 1)[1]: f for f in json.loads(run("failures", "--db", db, "--json").stdout)["failures"]}
    assert {k: v["error"] for k, v in ledger.items() if k.startswith("bad/")} == BAD_VIDEOS
    assert ledger["ideas/pasta/pin.json#page=2"]["error"] == "path_escape"
    assert ledger["ideas/broken/pin.json"]["error"] == "bad_json"
    assert len(ledger) == len(BAD_VIDEOS) + 2

    # cross-kind related pins, kinds filter, best frame and page
    rel = idx.related("images/red.jpg", k=4)
    assert {r.kind for r in rel} == {"image", "video", "idea"}
    assert all(r.kind == "video" for r in idx.related("images/red.jpg", k=4, kinds={"video"}))
    assert {r.kind for r in idx.related("videos/sunset.mp4", k=4, kinds=["idea", "image"])} == {"idea", "image"}
    query = tmp_path / "frame.png"
    Image.fromarray(frame_at(90, 12, 160, 96)).save(query)  # the frame shown at 7.5 s
    hits = {h.pin_id: h for h in idx.search_image(query, k=5)}
    assert hits["videos/sunset.mp4"].best_t_s == pytest.approx(7.5, abs=0.6)
    text_hits = {h.pin_id: h for h in idx.search_text("how to cook it", k=5)}
    assert text_hits["videos/sunset.mp4"].best_t_s is not None and text_hits["ideas/pasta"].best_page in (0, 1)
    r = run("search", "--text", "sunset", "--db", db, "--kind", "video", "--json")
    assert all(x["best_t_s"] is not None for x in json.loads(r.stdout)["results"])

    again = json.loads(run("ingest", mixed, "--db", db, "--json").stdout)
    assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 5)
    assert again["failed"] == len(BAD_VIDEOS) + 1 and again["warnings"] == 0  # the landed idea pin is unchanged


def test_slow_decode_is_a_timeout_row(mixed, db, tiny_model_id):
    r = run("ingest", mixed / "videos", "--db", db, "--model", tiny_model_id, "--video-timeout", "0.001", "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == 3 and out["added"] == 0
    assert {f["error"] for f in out["failures"]} == {"timeout"}
    r = run("ingest", mixed / "videos", "--db", db, "--json")  # with the default bound the same files land
    assert r.exit_code == 0 and json.loads(r.stdout)["added"] == 2
    assert json.loads(run("failures", "--db", db, "--json").stdout)["failures"] == []
