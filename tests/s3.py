"""A real S3-compatible server for tests: moto's server on 127.0.0.1 at a free port."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

REGION = "us-east-1"
KEY_ID, SECRET = "testing-key-id", "testing-secret-value"


#: AWS variables a test must not inherit from the machine (the tests give their own options).
AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT", "AWS_ALLOW_HTTP",
            "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION")


def isolate(tmp_path, monkeypatch, *more: str) -> None:
    """No AWS_* (nor ``more``) variables from the machine; object-storage lock files under tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for k in (*AWS_VARS, *more):
        monkeypatch.delenv(k, raising=False)


def free_port() -> int:
    """A TCP port nobody listens on (right now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class S3Server:
    endpoint: str
    key_id: str = KEY_ID
    secret: str = SECRET

    def client(self, service: str = "s3"):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, aws_access_key_id=self.key_id,
                            aws_secret_access_key=self.secret, region_name=REGION)

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def options(self, **over: str) -> dict[str, str]:
        """LanceDB storage options for this server."""
        opts = {"aws_endpoint": self.endpoint, "allow_http": "true", "aws_access_key_id": self.key_id,
                "aws_secret_access_key": self.secret, "aws_region": REGION}
        opts.update(over)
        return {k: v for k, v in opts.items() if v is not None}

    def cli_options(self, **over: str) -> list[str]:
        """The same as repeated ``--storage-option KEY=VALUE`` arguments."""
        return [a for k, v in self.options(**over).items() for a in ("--storage-option", f"{k}={v}")]

    def require_auth(self) -> tuple[str, str]:
        """Make an IAM user allowed s3:*, then make the server check every request's signature
        (moto's reset-auth, i.e. INITIAL_NO_AUTH_ACTION_COUNT 0). Returns the user's (key id, secret)."""
        import requests

        iam = self.client("iam")
        iam.create_user(UserName="pinner")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="pinner", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="pinner")["AccessKey"]
        requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
        self.key_id, self.secret = key["AccessKeyId"], key["SecretAccessKey"]
        return self.key_id, self.secret

    def open_access(self) -> None:
        import requests

        requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"inf", timeout=10)


@contextmanager
def moto_server() -> Iterator[S3Server]:
    """moto's S3 server in a thread of this process, stopped on exit."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = S3Server(f"http://127.0.0.1:{port}")
        yield s3
        s3.open_access()
    finally:
        server.stop()
