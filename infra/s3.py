"""S3 access for :mod:`infra.storage`, :mod:`infra.publish` and :mod:`infra.lease`: one
configuration, three clients.

Parquet and text files go through pyarrow's ``S3FileSystem`` (the AWS C++ SDK); Delta tables go
through delta-rs, which takes the same settings as ``storage_options``; the conditional PUTs of
the output lease (:mod:`infra.lease`), which pyarrow cannot make, through boto3. All find
credentials through the standard AWS chain (environment, ``~/.aws`` profiles, instance
metadata); nothing here reads or stores a secret.

Settings, each from an explicit :func:`configure` call or else the environment:

* endpoint: ``BIONER_S3_ENDPOINT`` or ``AWS_ENDPOINT_URL`` (``http://host:port`` for MinIO, moto,
  Ceph ...); unset means AWS itself.
* region: ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, ``us-east-1`` when an endpoint is set.
* attempts: ``BIONER_S3_MAX_ATTEMPTS`` (default 8). Throttling (``503 SlowDown``), 5xx and
  connection errors are retried by the SDK's *standard* retry strategy, with exponential
  backoff and jitter, rather than by a loop of ours.

Errors come out as :class:`StorageError`, an ``OSError`` whose message is one line naming the URI
and what to check (credentials, endpoint, bucket).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from pyarrow import fs as pafs

SCHEME = "s3://"
DEFAULT_MAX_ATTEMPTS = 8
#: Credentials variables of the AWS chain; the file system is rebuilt when one changes.
_CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
)


class StorageError(OSError):
    """A storage operation failed; the message is one line naming the URI.

    ``transient`` is False where trying again cannot help (access denied, no such bucket):
    task retries look at it.
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class S3Config:
    """Where and how to reach S3: endpoint override, region, attempts and time-outs."""

    endpoint: str | None = None
    region: str | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    connect_timeout: float = 5.0
    request_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.endpoint is not None:
            parts = urlsplit(self.endpoint)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"S3 endpoint {self.endpoint!r}: expected http(s)://host[:port]")
        if self.max_attempts < 1:
            raise ValueError(f"S3 max_attempts must be at least 1, got {self.max_attempts}")

    @property
    def effective_region(self) -> str | None:
        """The region to sign for; a custom endpoint gets ``us-east-1`` unless one is set."""
        return self.region or ("us-east-1" if self.endpoint else None)


_override: S3Config | None = None


def configure(
    endpoint: str | None = None, region: str | None = None, max_attempts: int | None = None
) -> S3Config:
    """Set the process-wide S3 settings explicitly (the CLI's ``--endpoint``); returns them.

    Values left ``None`` come from the environment, as without this call.
    """
    global _override
    config = from_environment()
    changes: dict[str, object] = {}
    if endpoint is not None:
        changes["endpoint"] = endpoint
    if region is not None:
        changes["region"] = region
    if max_attempts is not None:
        changes["max_attempts"] = max_attempts
    _override = replace(config, **changes)  # type: ignore[arg-type]
    return _override


def reset() -> None:
    """Forget :func:`configure`'s settings and cached clients (tests)."""
    global _override
    _override = None
    _filesystem.cache_clear()
    _client.cache_clear()


def from_environment() -> S3Config:
    """The settings the environment gives."""
    endpoint = os.environ.get("BIONER_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    attempts = int(os.environ.get("BIONER_S3_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))
    return S3Config(endpoint=endpoint or None, region=region or None, max_attempts=attempts)


def current() -> S3Config:
    """The settings in force: :func:`configure`'s, else the environment's."""
    return _override or from_environment()


def is_s3(uri: str) -> bool:
    """Whether ``uri`` names an S3 object or prefix."""
    return uri.startswith(SCHEME)


def split(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``; a clear error without a bucket."""
    bucket, _, key = uri.removeprefix(SCHEME).partition("/")
    if not bucket:
        raise ValueError(f"{uri}: an S3 URI needs a bucket, s3://BUCKET/KEY")
    return bucket, key.strip("/")


def path_of(uri: str) -> str:
    """The ``bucket/key`` path pyarrow's S3 file system takes."""
    bucket, key = split(uri)
    return f"{bucket}/{key}" if key else bucket


def filesystem() -> pafs.S3FileSystem:
    """pyarrow's S3 file system for the settings and credentials in force (cached)."""
    env = tuple(os.environ.get(name) for name in _CREDENTIAL_VARS)
    return _filesystem(current(), env)


@functools.lru_cache(maxsize=8)
def _filesystem(config: S3Config, _credentials: tuple[str | None, ...]) -> pafs.S3FileSystem:
    kwargs: dict[str, object] = {}
    if config.endpoint:
        parts = urlsplit(config.endpoint)
        kwargs["endpoint_override"] = parts.netloc
        kwargs["scheme"] = parts.scheme
    return pafs.S3FileSystem(
        region=config.effective_region,
        connect_timeout=config.connect_timeout,
        request_timeout=config.request_timeout,
        # The SDK's standard strategy: retries throttling and transient errors with backoff.
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=config.max_attempts),
        # Objects over the part size go up as a multipart upload, parts in the background;
        # like a single PUT, the object becomes visible only when complete.
        background_writes=True,
        # Open lazily: an object smaller than one part goes up as a single PutObject.
        allow_delayed_open=True,
        # Never create or delete buckets by accident through a directory operation.
        allow_bucket_creation=False,
        allow_bucket_deletion=False,
        **kwargs,
    )


def client() -> Any:
    """A boto3 S3 client with the same endpoint, region, attempts and time-outs (cached)."""
    return _client(current(), tuple(os.environ.get(name) for name in _CREDENTIAL_VARS))


@functools.lru_cache(maxsize=8)
def _client(config: S3Config, _credentials: tuple[str | None, ...]) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ImportError(
            "writing to S3 needs boto3: install the s3 extra (pip install 'bioner[s3]')"
        ) from None
    return boto3.session.Session().client(
        "s3",
        endpoint_url=config.endpoint,
        region_name=config.effective_region,
        config=Config(
            connect_timeout=config.connect_timeout,
            read_timeout=config.request_timeout,
            retries={"mode": "standard", "max_attempts": config.max_attempts},
        ),
    )


def delta_options() -> dict[str, str]:
    """``storage_options`` for delta-rs with the same endpoint, region and retries."""
    config = current()
    options: dict[str, str] = {
        # delta-rs retries transient errors itself; bound the time so a dead endpoint fails.
        "max_retries": str(max(config.max_attempts - 1, 0)),
        "retry_timeout": f"{int(config.request_timeout)}s",
        "timeout": f"{int(config.request_timeout)}s",
        "connect_timeout": f"{int(config.connect_timeout)}s",
    }
    if config.endpoint:
        options["AWS_ENDPOINT_URL"] = config.endpoint
        if config.endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    if config.effective_region:
        options["AWS_REGION"] = config.effective_region
    return options


_REASONS = (
    (
        re.compile(
            r"ACCESS_DENIED|INVALID_ACCESS_KEY_ID|SIGNATURE_DOES_NOT_MATCH|InvalidAccessKeyId|"
            r"SignatureDoesNotMatch|AccessDenied|\b403\b"
        ),
        "access denied: check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
        "AWS_PROFILE) and their rights on this bucket",
    ),
    (re.compile(r"NoSuchBucket|bucket does not exist", re.I), "no such bucket"),
    (
        re.compile(
            r"NETWORK_CONNECTION|Couldn't connect|Could not connect|connection refused|timed? ?out|"
            r"error sending request|Connection reset|Connection refused|Broken pipe",
            re.I,
        ),
        "cannot reach the S3 endpoint",
    ),
    (re.compile(r"SLOW_DOWN|SlowDown|\b503\b"), "throttled by S3 (503 SlowDown) after retries"),
)


def reason(error: BaseException) -> str:
    """A short, human reason for an S3 error, with the endpoint where that helps."""
    text = str(error)
    for pattern, said in _REASONS:
        if pattern.search(text):
            if said == "cannot reach the S3 endpoint":
                return f"{said} {current().endpoint or 'of AWS'}"
            return said
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first[:300]


@contextmanager
def errors(uri: str) -> Iterator[None]:
    """Turn an S3 failure inside into a one-line :class:`StorageError` naming ``uri``.

    A missing object stays a ``FileNotFoundError`` (callers test for it), with ``uri`` named.
    """
    try:
        yield
    except StorageError:
        raise
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{uri}: no such object") from e
    except OSError as e:
        raise _storage_error(uri, e) from e
    except Exception as e:
        if not type(e).__module__.startswith("botocore."):  # boto3's errors are not OSErrors
            raise
        raise _storage_error(uri, e) from e


def _storage_error(uri: str, error: BaseException) -> StorageError:
    said = reason(error)
    lasting = said.startswith(("access denied", "no such bucket"))
    return StorageError(f"{uri}: {said}", transient=not lasting)
