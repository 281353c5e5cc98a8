"""Object storage through the user's own commands, against a real S3-compatible server (moto's)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import pinembed
from pinembed.cli.main import cli

from helpers import save_image
from s3 import isolate, moto_server

DUMPS = ("Rust", "LanceError", "Debug", "RetryError", "Location", "backtrace", "Traceback", "please report")


@pytest.fixture(scope="module")
def s3():
    with moto_server() as server:
        server.create_bucket("pins")
        yield server


@pytest.fixture(autouse=True)
def _lock_dir(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    src = tmp_path_factory.mktemp("media")
    for i, name in enumerate(["red.jpg", "green.png", "blue.jpg", "shoes/red2.jpg"]):
        save_image(src / name, colour=(60 * i, 250 - 60 * i, 40 + 50 * i))
    return src


def run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def assert_one_error(r, exit_code: int, *needles: str, secret: str = "") -> str:
    """One ``error:`` line and a ``hint:`` line, no Rust dump, no secret; returns the error line."""
    assert r.exit_code == exit_code, r.output
    lines = r.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and len(lines) == 2 and lines[1].startswith("hint:"), r.stderr
    for word in DUMPS:
        assert word not in r.output, r.output
    if secret:
        assert secret not in r.output
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


def test_ingest_and_query_on_s3_with_storage_options(s3, media, tiny_model_id):
    uri = "s3://pins/opts.lance"
    r = run("ingest", media, "--db", uri, "--model", tiny_model_id, "--json", *s3.cli_options())
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["added"] == 4
    r = run("ingest", media, "--db", uri, "--json", *s3.cli_options())  # a re-run finds everything unchanged
    assert r.exit_code == 0 and json.loads(r.stdout)["unchanged"] == 4, r.output

    r = run("related", "red.jpg", "--db", uri, "--json", *s3.cli_options())
    assert r.exit_code == 0, r.output
    assert {x["pin_id"] for x in json.loads(r.stdout)["results"]} == {"green.png", "blue.jpg", "shoes/red2.jpg"}
    r = run("search", "a red square", "--db", uri, "-k", "2", "--json", *s3.cli_options())
    assert r.exit_code == 0 and len(json.loads(r.stdout)["results"]) == 2, r.output
    r = run("stats", "--db", uri, *s3.cli_options())
    assert r.exit_code == 0 and "pins: 4 (image 4)" in r.stdout, r.output

    idx = pinembed.open_index(uri, storage_options=s3.options())
    assert idx.stats()["pins"] == 4
    assert len(idx.related("red.jpg", k=10)) == 3
    assert len(idx.search_text("a red square", k=2)) == 2


def test_aws_environment_variables_are_enough(s3, media, tiny_model_id):
    env = {"AWS_ACCESS_KEY_ID": s3.key_id, "AWS_SECRET_ACCESS_KEY": s3.secret, "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT": s3.endpoint, "AWS_ALLOW_HTTP": "true"}
    uri = "s3://pins/env.lance"
    r = run("ingest", media, "--db", uri, "--model", tiny_model_id, env=env)
    assert r.exit_code == 0 and "added 4" in r.stdout, r.output
    r = run("stats", "--db", uri, env=env)
    assert r.exit_code == 0 and "pins: 4" in r.stdout, r.output
    # environment for the keys, one option for what the environment lacks
    env.pop("AWS_ALLOW_HTTP")
    r = run("related", "blue.jpg", "--db", uri, "--storage-option", "allow_http=true", env=env)
    assert r.exit_code == 0 and "red.jpg" in r.stdout, r.output


def test_missing_bucket(s3):
    r = run("stats", "--db", "s3://no-such-bucket/pins.lance", *s3.cli_options())
    assert_one_error(r, 2, "bucket 'no-such-bucket' does not exist", secret=s3.secret)


def test_http_endpoint_without_allow_http(s3):
    r = run("stats", "--db", "s3://pins/x.lance", *s3.cli_options(allow_http=None))
    line = assert_one_error(r, 2, s3.endpoint, "plain http", secret=s3.secret)
    assert "allow_http=true" in r.stderr, line


def test_bad_scheme(s3):
    r = run("stats", "--db", "s4://pins/x.lance", *s3.cli_options())
    assert_one_error(r, 2, "unknown storage scheme 's4'", secret=s3.secret)


def test_unreachable_endpoint_is_a_fault(s3, media, tiny_model_id):
    from s3 import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    for args in (["stats"], ["ingest", media, "--model", tiny_model_id]):
        r = run(*args, "--db", "s3://pins/x.lance", *s3.cli_options(aws_endpoint=closed))
        assert_one_error(r, 5, "object store is unreachable", closed, secret=s3.secret)


def test_bad_credentials(media, tiny_model_id):
    with moto_server() as server:  # a server of its own: signature checks stay on for this test only
        server.create_bucket("locked")
        key_id, secret = server.require_auth()
        uri = "s3://locked/pins.lance"
        r = run("ingest", media, "--db", uri, "--model", tiny_model_id, *server.cli_options())
        assert r.exit_code == 0, r.output  # the right key works
        for over in ({"aws_secret_access_key": "wrong-secret-value"}, {"aws_access_key_id": "AKIANOSUCHKEY0000000"}):
            r = run("related", "red.jpg", "--db", uri, *server.cli_options(**over))
            assert_one_error(r, 2, "refused the credentials", secret=over.get("aws_secret_access_key", secret))
            assert secret not in r.output


@pytest.mark.parametrize("bad", ["allow_http", "=true", "two words=x", "aws_region=a"])
def test_malformed_storage_option_is_a_usage_error(bad):
    args = ["stats", "--db", "s3://pins/x.lance", "--storage-option", "aws_region=us-east-1", "--storage-option", bad]
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert "--storage-option" in r.output
    if bad == "aws_region=a":
        assert "aws_region is given twice" in r.output
    else:
        assert "option 2 is not KEY=VALUE" in r.output and bad not in r.output


def test_every_database_command_takes_storage_options():
    for name in ("ingest", "refresh", "related", "search", "stats", "failures", "models", "gc", "dupes", "eval"):
        r = run(name, "--help")
        assert "--storage-option KEY=VALUE" in r.output, name
