"""Fixtures shared by the whole suite."""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The shared benchmark data: ``BIONER_DATA_DIR``, by default ``../shared/data``."""
    return Path(os.environ.get("BIONER_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder, or a skip that says where it was looked for."""
    d = data_dir()
    if not (d / "README.md").is_file():
        pytest.skip(f"real benchmark data not found at {d} (set BIONER_DATA_DIR)")
    return d


# --------------------------------------------------------------------------- S3 (moto)

#: The bucket every S3 test writes under (a fresh prefix per test).
S3_BUCKET = "bioner-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"moto_server did not listen on port {port} in {seconds} s")


class FaultyProxy:
    """An HTTP relay in front of moto that can throttle (503 SlowDown) or play dead.

    ``slow_down`` answers that many next requests with S3's throttling error; ``cut_after``
    lets that many more requests through and then drops every connection unanswered, as a
    server that stopped would. :meth:`heal` restores normal service.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.slow_down = 0
        self.cut_after: int | None = None
        self.requests = 0
        self.throttled = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                """The request body as it came on the wire (chunked framing kept)."""
                if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                raw = []  # the AWS SDK streams uploads with chunked transfer encoding
                while True:
                    line = self.rfile.readline()
                    raw.append(line)
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        break
                    raw.append(self.rfile.read(size + 2))
                while True:  # trailers, up to the empty line
                    line = self.rfile.readline()
                    raw.append(line)
                    if line in (b"\r\n", b"\n", b""):
                        break
                return b"".join(raw)

            def _relay(self) -> None:
                body = self._body()
                verdict = proxy._verdict()
                if verdict == "cut":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if verdict == "slow":
                    payload = (
                        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                        b"<Message>Please reduce your request rate.</Message></Error>"
                    )
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for key, value in self.headers.items():
                    if key.lower() not in ("connection", "expect"):
                        conn.putheader(key, value)
                conn.endheaders()
                conn.send(body)
                reply = conn.getresponse()
                data = reply.read()
                self.send_response(reply.status, reply.reason)
                for key, value in reply.getheaders():
                    if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(key, value)
                length = reply.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _verdict(self) -> str:
        with self._lock:
            self.requests += 1
            if self.slow_down > 0:
                self.slow_down -= 1
                self.throttled += 1
                return "slow"
            if self.cut_after is not None:
                if self.cut_after <= 0:
                    return "cut"
                self.cut_after -= 1
            return "pass"

    def heal(self) -> None:
        """Serve every request normally again."""
        with self._lock:
            self.slow_down = 0
            self.cut_after = None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclasses.dataclass
class MotoS3:
    """The running moto server: endpoint, bucket, the keys it accepts, and a faulty relay."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    proxy: FaultyProxy

    def uri(self, *parts: str) -> str:
        return "/".join([f"s3://{self.bucket}", *parts])


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """moto's standalone S3 server on a free loopback port, with IAM checks switched on.

    The first three requests (unauthenticated) make an IAM user with full rights and its
    access key; every later request must carry those credentials, so wrong ones fail as on
    AWS. The session's environment points the AWS chain and ``BIONER_S3_ENDPOINT`` at it.
    """
    pytest.importorskip("moto", reason="install the dev extra for the S3 tests (moto[server])")
    boto3 = pytest.importorskip("boto3")
    port = _free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    proc = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proxy = None
    try:
        _wait_for_port(port, proc)
        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="bioner")
        key = iam.create_access_key(UserName="bioner")["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="bioner", PolicyName="all", PolicyDocument=json.dumps(policy))
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        ).create_bucket(Bucket=S3_BUCKET)
        proxy = FaultyProxy(port)
        patch = pytest.MonkeyPatch()
        for name, value in {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "BIONER_S3_ENDPOINT": endpoint,
            "BIONER_S3_MAX_ATTEMPTS": "3",
        }.items():
            patch.setenv(name, value)
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        try:
            yield MotoS3(endpoint, S3_BUCKET, key["AccessKeyId"], key["SecretAccessKey"], proxy)
        finally:
            patch.undo()
    finally:
        if proxy is not None:
            proxy.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
