"""Amazon S3: the mail an SES receipt rule's S3 action stored, fetched for the processing job.

The notification (SNS-signed, its topic pinned) names the bucket and key; the object is read
with the operator's credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY when set, else
boto3's default chain (an instance or task role). SES_S3_REGION turns fetching on, and
SES_S3_ENDPOINT_URL points it at another S3 (a local one in tests). Failures are split the
way the processing job needs them: TransientFetchError (try again later) or
PermanentFetchError (no retry will fix it), each naming the object and the cause.
"""

from __future__ import annotations

import threading

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)

from app.errors import PermanentFetchError, TransientFetchError
from app.settings import Settings
from parsers.providers import S3Object

MAX_OBJECT_BYTES = 40 * 1024 * 1024 + 64 * 1024  # SES stores mail up to 40 MB, headers included
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 20.0  # with one retry, well inside INBOUND_JOB_TIME_LIMIT_S
# S3 error codes worth another try later; every other error code is the object's or the account's
TRANSIENT_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling"}
# botocore faults of the configuration: retrying changes nothing until an operator acts
CONFIG_FAULTS = (NoCredentialsError, PartialCredentialsError, NoRegionError, ParamValidationError)
_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def reset() -> None:
    """Forget the S3 clients (one is kept per configuration for the life of the process)."""
    with _clients_lock:
        _clients.clear()


def _client(settings: Settings):
    credentials = {}
    if settings.aws_access_key_id:
        credentials = {
            "aws_access_key_id": settings.aws_access_key_id,
            "aws_secret_access_key": settings.aws_secret_access_key,
            "aws_session_token": settings.aws_session_token or None,
        }
    key = (settings.ses_s3_region, settings.ses_s3_endpoint_url, *credentials.values())
    with _clients_lock:  # creating a client is slow and not thread-safe; using one is both fine
        if key not in _clients:
            config = Config(
                connect_timeout=CONNECT_TIMEOUT_S,
                read_timeout=READ_TIMEOUT_S,
                retries={"max_attempts": 2, "mode": "standard"},
            )
            _clients[key] = boto3.session.Session(**credentials).client(
                "s3",
                region_name=settings.ses_s3_region,
                endpoint_url=settings.ses_s3_endpoint_url or None,
                config=config,
            )
        return _clients[key]


def fetch(where: S3Object, settings: Settings) -> bytes:
    """The bytes of the object at ``where``; raises TransientFetchError or PermanentFetchError."""
    what = f"cannot fetch the mail from {where}"
    if not settings.ses_s3_region:
        raise PermanentFetchError(f"{what}: S3 is not configured (set SES_S3_REGION)")
    if not where.bucket or not where.key:
        raise PermanentFetchError(f"{what}: the notification names no bucket or object key")
    try:
        found = _client(settings).get_object(Bucket=where.bucket, Key=where.key)
        body = found["Body"]
        try:
            if found.get("ContentLength", 0) > MAX_OBJECT_BYTES:
                raise PermanentFetchError(f"{what}: larger than {MAX_OBJECT_BYTES} bytes")
            data = body.read(MAX_OBJECT_BYTES + 1)
        finally:
            body.close()
    except ClientError as e:
        error = e.response.get("Error", {})
        code = str(error.get("Code", "")) or "error"
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        cause = f"{code} (HTTP {status}): {str(error.get('Message', ''))[:300]}"
        if code in TRANSIENT_CODES or status >= 500:
            raise TransientFetchError(f"{what}: {cause}") from None
        raise PermanentFetchError(f"{what}: {cause}") from None
    except CONFIG_FAULTS as e:
        hint = " (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give the process a role)"
        extra = hint if isinstance(e, NoCredentialsError | PartialCredentialsError) else ""
        raise PermanentFetchError(f"{what}: {type(e).__name__}: {str(e)[:300]}{extra}") from None
    except (BotoCoreError, OSError) as e:  # connection refused, DNS, timeouts, a cut connection
        raise TransientFetchError(f"{what}: {type(e).__name__}: {str(e)[:300]}") from None
    if len(data) > MAX_OBJECT_BYTES:
        raise PermanentFetchError(f"{what}: larger than {MAX_OBJECT_BYTES} bytes")
    if not data.strip():
        raise PermanentFetchError(f"{what}: the object is empty")
    return data
