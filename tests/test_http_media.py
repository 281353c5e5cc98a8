"""Media over http(s) (ingestion/http_media.py) against a real server on 127.0.0.1: good reads through
the read stage's helpers, and each way a fetch fails as the InputError a ledger row shows."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from media_server import MediaServer, self_signed_cert
from PIL import Image

from pinembed.errors import InputError, UsageError
from pinembed.ingestion import http_media, object_media
from pinembed.ingestion.http_media import HttpMedia

LOCAL = ["127.0.0.1"]
MiB = 1 << 20


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


def failure(fn, *args) -> InputError:
    with pytest.raises(InputError) as e:
        fn(*args)
    assert e.value.hint, "every failure says what to do"
    return e.value


# -- good answers ------------------------------------------------------------------------------------

def test_a_jpeg_reads_through_the_read_stages_helpers(media_server, tmp_path):
    data = jpeg()
    url = media_server.add("/pins/a.jpg", body=data, content_type="image/jpeg")
    media = HttpMedia(LOCAL)
    before = http_media.reads
    assert object_media.read_file(url, media, 10 * MiB) == data
    assert object_media.read_head(url, media, 10) == data[:11]
    local = tmp_path / "a.jpg"
    local.write_bytes(data)
    assert object_media.file_digest(url, media) == object_media.file_digest(local)
    assert media.digest(url) == hashlib.blake2b(data, digest_size=16).hexdigest()
    with object_media.local_file(url, media, 10 * MiB) as path:
        assert Path(path).read_bytes() == data
    assert http_media.reads - before == 5
    assert media_server.hits("/pins/a.jpg") == 5


@pytest.mark.parametrize("ctype", [None, "application/octet-stream", "binary/octet-stream", "video/mp4",
                                   "image/svg+xml"])
def test_media_types_and_none_are_fine(media_server, ctype):
    url = media_server.add("/x", body=b"bytes", content_type=ctype)
    assert HttpMedia(LOCAL).read(url, 100) == b"bytes"


def test_a_body_dripped_within_the_deadline_arrives_whole(media_server):
    url = media_server.add("/d.jpg", body=b"z" * 50, drip=(10, 0.02))
    assert HttpMedia(LOCAL, timeout_s=5).read(url, 100) == b"z" * 50


def test_local_copy_has_the_urls_extension_and_is_deleted_after(media_server, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    url = media_server.add("/v/clip.mp4", body=b"\0\0\0\x18ftypmp42", content_type="video/mp4")
    media = HttpMedia(LOCAL)
    with media.local_copy(url + "?sig=abc", 1000) as path:
        assert path.endswith(".mp4") and Path(path).read_bytes() == b"\0\0\0\x18ftypmp42"
    assert not os.path.exists(path)
    with pytest.raises(RuntimeError), media.local_copy(url, 1000) as path:
        raise RuntimeError("the decoder failed")
    assert not os.path.exists(path)
    with pytest.raises(InputError), media.local_copy(media_server.url("/v/gone.mp4"), 1000):
        pass
    assert list(tmp_path.iterdir()) == []


def test_pickling_keeps_the_settings_and_not_the_pool(media_server):
    url = media_server.add("/a.jpg", body=b"abc", content_type="image/jpeg")
    media = HttpMedia(["127.0.0.1", "*.example.com"], timeout_s=7, max_concurrency=3, retries=1, max_redirects=2)
    assert media.read(url, 10) == b"abc"  # the pool is made
    back = pickle.loads(pickle.dumps(media))
    assert back.__getstate__() == media.__getstate__()
    assert (back.timeout_s, back.max_concurrency, back.retries, back.max_redirects) == (7, 3, 1, 2)
    assert back.allowed("https://cdn.example.com/x.jpg") and not back.allowed("https://example.com/x.jpg")
    assert back._pool is None
    assert back.read(url, 10) == b"abc"


def test_stat_from_head(media_server):
    url = media_server.add("/s.jpg", body=b"x" * 1234, content_type="image/jpeg",
                           headers={"ETag": '"v1-abc"', "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert HttpMedia(LOCAL).stat(url) == (1234, "v1-abc", 1445412480 * 1_000_000_000)
    assert [r.method for r in media_server.requests] == ["HEAD"]
    bare = media_server.add("/bare", body=b"", length=False)
    assert HttpMedia(LOCAL).stat(bare) == (-1, "", 0)


def test_stat_falls_back_to_a_range_get_when_head_is_refused(media_server):
    url = media_server.add("/r.mp4", size=5 * MiB, head=False, headers={"ETag": "W/\"7\""})
    assert HttpMedia(LOCAL).stat(url) == (5 * MiB, "W/7", 0)  # quotes dropped, as object_media does
    assert [r.method for r in media_server.requests] == ["HEAD", "GET"]
    assert media_server.requests[1].headers["Range"] == "bytes=0-0"
    assert media_server.sent("/r.mp4") <= 1  # the range was honoured (stat returns on the headers: the
    # server may not have written its one byte yet)
    ignores = media_server.add("/no-ranges.mp4", size=4096, head=False, ranges=False)
    assert HttpMedia(LOCAL).stat(ignores)[0] == 4096  # a 200 with the whole body: its Content-Length


# -- failures ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [404, 410])
def test_missing_is_not_found_and_not_tried_again(media_server, status):
    url = media_server.add("/gone.jpg", status=status)
    e = failure(HttpMedia(LOCAL, backoff_s=0.01).read, url, 100)
    assert e.error == "not_found" and url in e.message and str(status) in e.message
    assert media_server.hits() == 1


def test_other_4xx_is_http_error_and_not_tried_again(media_server):
    url = media_server.add("/private.jpg", status=403)
    e = failure(HttpMedia(LOCAL, backoff_s=0.01).read, url, 100)
    assert e.error == "http_error" and "403" in e.message and url in e.message
    assert media_server.hits() == 1


def test_a_slow_answer_times_out_within_the_deadline(media_server):
    url = media_server.add("/slow.jpg", body=b"late", delay_s=5)
    t0 = time.monotonic()
    e = failure(HttpMedia(LOCAL, timeout_s=0.5, backoff_s=0.01).read, url, 100)
    assert e.error == "timeout" and url in e.message
    assert time.monotonic() - t0 < 1.5


@pytest.mark.parametrize("length", [True, False])
def test_a_dripped_body_times_out_within_the_deadline(media_server, length):
    url = media_server.add("/drip.jpg", body=b"y" * 2000, drip=(10, 0.05), length=length)  # 10 s in all
    t0 = time.monotonic()
    e = failure(HttpMedia(LOCAL, timeout_s=0.6).read, url, 10_000)
    assert e.error == "timeout"
    assert time.monotonic() - t0 < 1.5
    assert media_server.hits() == 1  # the deadline left no time to try again


def test_huge_with_content_length_is_refused_before_the_body(media_server):
    url = media_server.add("/huge.mp4", size=1 << 30)
    e = failure(HttpMedia(LOCAL).read, url, MiB)
    assert e.error == "too_large" and "1,073,741,824" in e.message and url in e.message
    assert media_server.sent("/huge.mp4") < 32 * MiB  # what socket buffers took before the client hung up


def test_huge_without_content_length_is_cut_while_streaming(media_server, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    url = media_server.add("/huge.mp4", size=1 << 30, length=False)
    media = HttpMedia(LOCAL)
    assert failure(media.read, url, MiB).error == "too_large"
    with pytest.raises(InputError) as e, media.local_copy(url, MiB):
        pass
    assert e.value.error == "too_large" and list(tmp_path.iterdir()) == []
    assert media.read_head(url, 100) == bytes(101)  # a head of it is fine
    assert media_server.sent("/huge.mp4") < 96 * MiB


@pytest.mark.parametrize("ctype", ["text/html; charset=utf-8", "application/json", "application/xml",
                                   "application/problem+json", "text/plain"])
def test_a_page_or_data_is_not_media(media_server, ctype):
    url = media_server.add("/a.jpg", body=b"<html>sign in</html>", content_type=ctype)
    e = failure(HttpMedia(LOCAL).read, url, 100)
    assert e.error == "not_media" and url in e.message and ctype.split(";")[0] in e.message


def test_a_host_off_the_allow_list_is_refused_without_a_request(media_server):
    url = media_server.add("/a.jpg", body=b"abc")
    for media in (HttpMedia(["cdn.example.com"]), HttpMedia([])):
        e = failure(media.read, url, 100)
        assert e.error == "host_not_allowed" and url in e.message and "--allow-host 127.0.0.1" in e.hint
        assert not media.allowed(url)
        with pytest.raises(InputError):
            media.check(url)
        with pytest.raises(InputError), media.local_copy(url):
            pass
        assert failure(media.stat, url).error == "host_not_allowed"
    assert media_server.requests == []


def test_the_allow_list():
    media = HttpMedia(["CDN.example.com", "img.example.org:8443", "*.pins.example.net", "[::1]:9000"])
    yes = ["https://cdn.example.com/a.jpg", "http://CDN.Example.COM:8080/a.jpg", "https://cdn.example.com./a",
           "https://img.example.org:8443/a.jpg", "https://a.pins.example.net/x", "https://a.b.pins.example.net/x",
           "http://[::1]:9000/a.jpg"]
    no = ["https://example.com/a.jpg", "https://img.example.org/a.jpg", "https://pins.example.net/x",
          "https://evilpins.example.net/x", "ftp://cdn.example.com/a.jpg", "file:///etc/passwd",
          "https://user:secret@cdn.example.com/a.jpg", "https://user@cdn.example.com/a.jpg",
          "https://cdn.example.com.evil.org/a.jpg", "http://[::1]:9001/a.jpg", "not a url", "https:///a.jpg",
          "https://cdn.example.com:99999/a.jpg"]
    assert [u for u in yes if not media.allowed(u)] == []
    assert [u for u in no if media.allowed(u)] == []
    e = failure(media.check, "https://user:secret@cdn.example.com/a.jpg")
    assert e.error == "host_not_allowed" and "secret" not in e.message and "credentials" in e.message
    assert HttpMedia(["example.com:443"]).allowed("https://example.com/a")
    assert not HttpMedia(["example.com:443"]).allowed("http://example.com/a")
    for bad in ["", "https://cdn.example.com", "cdn.example.com/path", "*", "cdn.*.com", "a.com:0",
                "a.com:http", "user@a.com"]:
        with pytest.raises(UsageError):
            HttpMedia([bad])


def test_a_redirect_to_an_allowed_host_is_followed(media_server):
    data = jpeg()
    media_server.add("/a.jpg", body=data, content_type="image/jpeg")
    url = media_server.add("/moved.jpg", redirect=media_server.url("/a.jpg", host="localhost"), redirect_status=301)
    relative = media_server.add("/rel.jpg", redirect="/a.jpg", redirect_status=307)
    media = HttpMedia(["127.0.0.1", "localhost"])
    assert media.read(url, MiB) == data
    assert media.read(relative, MiB) == data
    assert media.stat(url)[0] == len(data)


def test_a_redirect_to_a_host_off_the_allow_list_is_refused(media_server):
    target = media_server.add("/a.jpg", body=b"abc")
    url = media_server.add("/moved.jpg", redirect=media_server.url("/a.jpg", host="localhost"))
    e = failure(HttpMedia(LOCAL).read, url, 100)
    assert e.error == "redirect_not_allowed" and url in e.message and "localhost" in e.message
    assert "--allow-host localhost" in e.hint
    assert [r.path for r in media_server.requests] == ["/moved.jpg"]
    media_server.add("/to-ftp.jpg", redirect="ftp://127.0.0.1/a.jpg")
    assert failure(HttpMedia(LOCAL).read, media_server.url("/to-ftp.jpg"), 100).error == "redirect_not_allowed"
    assert HttpMedia(LOCAL).read(target, 100) == b"abc"


def test_too_many_redirects(media_server):
    url = media_server.add("/loop", redirect="/loop")
    e = failure(HttpMedia(LOCAL, max_redirects=2).read, url, 100)
    assert e.error == "http_error" and "redirects more than 2 times" in e.message
    assert media_server.hits("/loop") == 3


def test_https_works_and_a_downgrade_to_http_is_refused(media_server, tmp_path, monkeypatch):
    pytest.importorskip("cryptography")
    cert, key = self_signed_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # how a user trusts a private CA
    plain = media_server.add("/a.jpg", body=b"plain", content_type="image/jpeg")
    with MediaServer(tls=(cert, key)) as tls:
        good = tls.add("/a.jpg", body=b"secure", content_type="image/jpeg")
        down = tls.add("/down.jpg", redirect=plain)
        media = HttpMedia(LOCAL)
        assert good.startswith("https://") and media.read(good, 100) == b"secure"
        e = failure(media.read, down, 100)
        assert e.error == "redirect_not_allowed" and plain in e.message and "https" in e.message
    assert media_server.requests == []


def test_503_then_200_is_tried_again(media_server):
    url = media_server.add("/flaky.jpg", body=b"ok", fail_first=2)
    assert HttpMedia(LOCAL, retries=2, backoff_s=0.01).read(url, 100) == b"ok"
    assert media_server.hits() == 3


def test_retry_after_is_honoured(media_server):
    url = media_server.add("/busy.jpg", body=b"ok", fail_first=1, fail_status=429, retry_after="1")
    t0 = time.monotonic()
    assert HttpMedia(LOCAL, retries=1, backoff_s=0.01).read(url, 100) == b"ok"
    assert 0.9 < time.monotonic() - t0 < 3


def test_retries_run_out(media_server):
    url = media_server.add("/down.jpg", body=b"ok", fail_first=100, fail_status=502)
    e = failure(HttpMedia(LOCAL, retries=2, backoff_s=0.01).read, url, 100)
    assert e.error == "http_error" and "502" in e.message and "3 tries" in e.message
    assert media_server.hits() == 3


def test_nothing_listening_is_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/a.jpg"
    e = failure(HttpMedia(LOCAL, retries=1, backoff_s=0.01).read, url, 100)
    assert e.error == "unreachable" and url in e.message


def test_at_most_max_concurrency_requests_are_in_flight(media_server):
    url = media_server.add("/a.jpg", body=b"abc", delay_s=0.25)
    media = HttpMedia(LOCAL, max_concurrency=3)
    got: list[bytes] = []
    threads = [threading.Thread(target=lambda: got.append(media.read(url, 100))) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert got == [b"abc"] * 10
    assert media_server.max_in_flight == 3
