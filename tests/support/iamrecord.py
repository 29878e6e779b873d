"""What AWS a process really asked for, read from moto's request recorder, as IAM actions on
resource ARNs; and whether a policy document allows each one (the subset of IAM's rules that
daylib's policies use: exact actions, ARN patterns, ``StringLike`` on ``s3:prefix``)."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ACCOUNT = "123456789012"
_BATCH = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
          "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}
# Calls every identity may make without a grant.
_FREE = {"sts:GetCallerIdentity"}


@dataclass(frozen=True)
class Call:
    action: str
    resource: str
    prefix: str | None = None  # s3:ListBucket's s3:prefix


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def calls(entries: list[dict[str, Any]]) -> list[Call]:
    out: list[Call] = []
    for e in entries:
        out.extend(c for c in _parse(e) if c.action not in _FREE)
    return out


def by_key(entries: list[dict[str, Any]]) -> dict[str, list[Call]]:
    """Calls grouped by the access key that signed them: one key per role, so processes
    running at the same time (a monitor daemon and an uploader) are told apart."""
    out: dict[str, list[Call]] = {}
    for e in entries:
        out.setdefault(access_key(e), []).extend(calls([e]))
    return out


def access_key(entry: dict[str, Any]) -> str:
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    match = re.search(r"Credential=([^/]+)/", headers.get("authorization", ""))
    return match.group(1) if match else ""


def _parse(e: dict[str, Any]) -> list[Call]:
    headers = {k.lower(): v for k, v in e["headers"].items()}
    match = re.search(r"Credential=[^/]+/\d+/([^/]+)/([^/]+)/", headers.get("authorization", ""))
    if not match:
        return []
    region, service = match.groups()
    body = e.get("body") or ""
    if e.get("body_encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    target = headers.get("x-amz-target", "")
    if service == "s3":
        return _s3(e["method"], e["url"], headers)
    if target:
        op = target.split(".", 1)[1]
        params = json.loads(body) if body else {}
    else:
        form = {k: v[0] for k, v in parse_qs(body).items()}
        op, params = form.get("Action", ""), form
    op = _BATCH.get(op, op)
    return [Call(f"{service}:{op}", _arn(service, region, op, params))]


def _arn(service: str, region: str, op: str, p: dict[str, Any]) -> str:
    if service == "dynamodb":
        tables = [p["TableName"]] if "TableName" in p else list(p.get("RequestItems", {}))
        base = f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{tables[0]}" if tables else "*"
        return f"{base}/index/{p['IndexName']}" if p.get("IndexName") else base
    if service == "sqs":
        name = p.get("QueueName") or str(p.get("QueueUrl", "")).rstrip("/").rsplit("/", 1)[-1]
        return f"arn:aws:sqs:{region}:{ACCOUNT}:{name}" if name else "*"
    if service == "sns":
        return str(p.get("TopicArn", "*"))
    if service == "cloudformation":
        name = p.get("StackName")
        return f"arn:aws:cloudformation:{region}:{ACCOUNT}:stack/{name}/id" if name else "*"
    return "*"


def _s3(method: str, url: str, headers: dict[str, str]) -> list[Call]:
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    path = parts.path.lstrip("/")
    bucket, _, key = path.partition("/")
    key = unquote(key)
    if not bucket:
        return [Call("s3:ListAllMyBuckets", "*")]
    bucket_arn = f"arn:aws:s3:::{bucket}"
    if not key:
        if "notification" in query:
            return [Call(("s3:GetBucketNotification" if method == "GET" else
                          "s3:PutBucketNotification"), bucket_arn)]
        if "delete" in query:
            return [Call("s3:DeleteObject", f"{bucket_arn}/*")]
        if method == "PUT":
            return [Call("s3:CreateBucket", bucket_arn)]
        if method in ("GET", "HEAD") and set(query) <= {"list-type", "prefix", "delimiter",
                                                         "continuation-token", "max-keys",
                                                         "encoding-type", "start-after"}:
            prefix = query.get("prefix", [""])[0]
            return [Call("s3:ListBucket", bucket_arn, prefix)]
        return [Call(f"s3:Bucket{method}?{'&'.join(sorted(query))}", bucket_arn)]
    obj = f"{bucket_arn}/{key}"
    if method in ("GET", "HEAD"):
        return [Call("s3:GetObject", obj)]
    if method == "DELETE":
        return [Call("s3:AbortMultipartUpload" if "uploadId" in query else "s3:DeleteObject",
                     obj)]
    if method in ("PUT", "POST"):
        out = [Call("s3:PutObject", obj)]
        source = headers.get("x-amz-copy-source")
        if source:
            out.append(Call("s3:GetObject", f"arn:aws:s3:::{unquote(source).lstrip('/')}"))
        return out
    return [Call(f"s3:Object{method}", obj)]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allows(policy: dict[str, Any], call: Call) -> bool:
    for st in policy["Statement"]:
        if st.get("Effect") != "Allow" or call.action not in _as_list(st["Action"]):
            continue
        if not any(fnmatchcase(call.resource, r) for r in _as_list(st["Resource"])):
            continue
        cond = st.get("Condition", {})
        like = cond.get("StringLike", {}).get("s3:prefix")
        if like is not None and (call.prefix is None or
                                 not any(fnmatchcase(call.prefix, p) for p in _as_list(like))):
            continue
        if set(cond) - {"StringLike"}:
            continue  # a condition this checker does not know never grants
        return True
    return False


def actions(policy: dict[str, Any]) -> set[str]:
    return {a for st in policy["Statement"] if st.get("Effect") == "Allow"
            for a in _as_list(st["Action"])}
