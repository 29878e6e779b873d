"""``daylily-workset doctor``: each check says what it found and, when something is wrong,
the command or setting that fixes it. The deployment is fine only if every check passes."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from daylib.aws import AwsClients, describe, error_code, find_queue
from daylib.config import Settings
from daylib.errors import AwsError, AwsNotFound
from daylib.store.items import ACTIVE_INDEX, DONE_INDEX, OUTBOX_INDEX

INDEXES = (ACTIVE_INDEX, DONE_INDEX, OUTBOX_INDEX)
MAX_SKEW_SECONDS = 240.0  # SigV4 refuses requests more than 5 minutes off
EXPIRY_WARN_SECONDS = 900.0
INIT = "run `daylily-workset init` (or deploy infra/daylib.yaml and `config from-stack`)"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return f"{mark} {self.name:13} {self.detail}" + (f"\n     fix: {self.fix}"
                                                          if self.fix and not self.ok else "")


def clock_skew(date_header: str, now: float) -> float:
    """Seconds this machine's clock is ahead (+) or behind (-) of AWS's ``Date`` header."""
    return now - parsedate_to_datetime(date_header).timestamp()


class Doctor:
    def __init__(self, settings: Settings, clients: AwsClients,
                 environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.clients = clients
        self.env = os.environ if environ is None else environ
        self.region = clients.region

    def run(self) -> list[Check]:
        checks: list[Check] = [Check("config", True, "loaded")]
        steps: list[Callable[[], list[Check]]] = [
            self.credentials, self.regions, self.table, self.bucket, self.topic, self.queues,
            self.slurm]
        for step in steps:
            try:
                checks.extend(step())
            except AwsError as exc:
                checks.append(Check(step.__name__, False, str(describe(exc)),
                                    _fix_for(exc)))
        return checks

    def credentials(self) -> list[Check]:
        sts = self.clients.client("sts")
        resp = sts.get_caller_identity()
        out = [Check("credentials", True, f"{resp.get('Arn')} (account {resp.get('Account')})")]
        creds = self.clients.session_credentials()
        expiry = getattr(creds, "_expiry_time", None)
        if expiry is not None:
            left = expiry.timestamp() - time.time()
            out.append(Check("expiry", left > EXPIRY_WARN_SECONDS,
                             f"credentials expire in {left / 60:.0f} min",
                             "refresh them (aws sso login / new role session) before they "
                             "run out; the monitor needs a role that renews itself"))
        date = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        if date:
            skew = clock_skew(date, time.time())
            out.append(Check("clock", abs(skew) < MAX_SKEW_SECONDS,
                             f"{skew:+.0f} s against AWS",
                             "synchronise the clock (chronyc makestep / timedatectl "
                             "set-ntp true): AWS refuses requests signed 5 min off"))
        return out

    def regions(self) -> list[Check]:
        cfg = self.settings
        found = {"client": self.region}
        for label, arn in (("notify.topic_arn", cfg.notify.topic_arn),):
            if arn and arn.count(":") >= 5:
                found[label] = arn.split(":")[3]
        if cfg.dlq.queue_url and ".amazonaws.com" in cfg.dlq.queue_url:
            found["dlq.queue_url"] = cfg.dlq.queue_url.split("//")[-1].split(".")[1]
        if cfg.routing.region:
            found["routing.region"] = cfg.routing.region
        wrong = {k: v for k, v in found.items() if v != self.region}
        where = "--region/aws.region" if cfg.aws.region else (
            "AWS_REGION" if self.env.get("AWS_REGION") else
            "AWS_DEFAULT_REGION" if self.env.get("AWS_DEFAULT_REGION") else "profile/default")
        detail = f"{self.region} (from {where})"
        out = [Check("region", not wrong, detail + "".join(f"; {k} is in {v}"
                                                           for k, v in wrong.items()),
                     f"use one region: set aws.region (or --region) to where the resources "
                     f"are, or fix {', '.join(wrong)}")]
        a, b = self.env.get("AWS_REGION"), self.env.get("AWS_DEFAULT_REGION")
        if a and b and a != b and not cfg.aws.region:
            out.append(Check("region env", True, f"AWS_REGION={a} wins over "
                             f"AWS_DEFAULT_REGION={b} (other AWS tools may disagree)"))
        return out

    def table(self) -> list[Check]:
        name = self.settings.state.table
        try:
            desc = self.clients.client("dynamodb").describe_table(TableName=name)["Table"]
        except AwsError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return [Check("table", False, f"DynamoDB table {name!r} not found in "
                              f"{self.region}", INIT)]
            raise
        have = {g["IndexName"] for g in desc.get("GlobalSecondaryIndexes", [])}
        lacking = [i for i in INDEXES if i not in have]
        return [Check("table", desc.get("TableStatus") == "ACTIVE" and not lacking,
                      f"{name} {desc.get('TableStatus')}, indexes "
                      + (", ".join(sorted(have)) or "none")
                      + (f"; missing {', '.join(lacking)}" if lacking else ""),
                      "run `daylily-workset init` (adds missing indexes) or update the stack")]

    def bucket(self) -> list[Check]:
        name = self.settings.storage.bucket
        s3 = self.clients.client("s3")
        try:  # a listing under the prefix: what the policies grant (HeadBucket is not)
            s3.list_objects_v2(Bucket=name, Prefix=self.settings.storage.prefix, MaxKeys=1)
        except AwsError as exc:
            code = error_code(exc)
            if code in ("404", "NoSuchBucket"):
                return [Check("bucket", False, f"S3 bucket {name!r} not found", INIT)]
            if code in ("403", "AccessDenied"):
                return [Check("bucket", False, f"S3 bucket {name!r}: access denied",
                              "attach the daylib policy from the stack to this role")]
            raise
        out = [Check("bucket", True, f"{name} (prefix {self.settings.storage.prefix})")]
        queue = self._intake_url()
        if queue:
            conf = s3.get_bucket_notification_configuration(Bucket=name)
            arn = self._queue_arn(queue)
            hits = [q for q in conf.get("QueueConfigurations", [])
                    if q.get("QueueArn") == arn]
            out.append(Check("notification", bool(hits),
                             f"ObjectCreated events {'go' if hits else 'do not go'} to "
                             f"the intake queue", INIT))
        return out

    def _queue_arn(self, url: str) -> str:
        attrs = self.clients.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
        return str(attrs["QueueArn"])

    def topic(self) -> list[Check]:
        n = self.settings.notify
        if not n.enabled:
            return [Check("topic", True, "notifications off (notify.enabled: false)")]
        sns = self.clients.client("sns")
        if n.topic_arn:
            try:
                sns.get_topic_attributes(TopicArn=n.topic_arn)
            except AwsError as exc:
                if error_code(exc) in ("NotFound", "NotFoundException"):
                    return [Check("topic", False, f"SNS topic {n.topic_arn} not found in "
                                  f"{self.region}", INIT)]
                raise
            return [Check("topic", True, n.topic_arn)]
        from daylib.notify import find_topic
        arn = find_topic(sns, n.topic_name)
        return [Check("topic", arn is not None, arn or f"SNS topic {n.topic_name!r} not "
                      f"found in {self.region}", INIT)]

    def queues(self) -> list[Check]:
        d = self.settings.dlq
        out = []
        if d.enabled:
            out.append(self._queue("dead-letter", d.queue_url, d.queue_name))
        i = self.settings.intake
        if i.enabled:
            out.append(self._queue("intake", i.queue_url, i.queue_name))
        return out

    def _intake_url(self) -> str | None:
        """The intake queue the monitor would long-poll; None when off or not there."""
        i = self.settings.intake
        if not i.enabled:
            return None
        if i.queue_url:
            return i.queue_url
        return find_queue(self.clients.client("sqs"), i.queue_name)  # None: the check names it

    def _queue(self, label: str, url: str | None, name: str | None) -> Check:
        sqs = self.clients.client("sqs")
        found: str | None = url
        try:
            if url:
                sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            else:
                found = find_queue(sqs, name or "")
        except AwsNotFound:
            found = None
        if found is None:
            return Check(f"{label} queue", False, f"SQS queue {url or name!r} not found in "
                         f"{self.region}", INIT)
        return Check(f"{label} queue", True, found)

    def slurm(self) -> list[Check]:
        if self.settings.monitor.executor != "slurm":
            return [Check("slurm", True, "not used (monitor.executor: local)")]
        sinfo = shutil.which("sinfo")
        if sinfo is None:
            return [Check("slurm", False, "sinfo not on PATH",
                          "add /opt/slurm/bin to PATH (ParallelCluster head node) or set "
                          "monitor.executor: local")]
        try:
            res = subprocess.run([sinfo, "-h", "-o", "%P %a"], capture_output=True, text=True,
                                 timeout=self.settings.slurm.command_timeout_seconds)
        except subprocess.TimeoutExpired:
            return [Check("slurm", False, "sinfo timed out", "check slurmctld")]
        if res.returncode != 0:
            return [Check("slurm", False, f"sinfo failed: {res.stderr.strip()[:200]}",
                          "start slurmctld / check slurm.conf (SLURM_CONF)")]
        parts = " ".join(line.split()[0] for line in res.stdout.splitlines() if line.strip())
        return [Check("slurm", True, f"partitions: {parts or 'none'}")]


def _fix_for(exc: BaseException) -> str:
    code = error_code(exc)
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        return "attach the policy from infra/daylib.yaml to this role"
    if code in ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId",
                "UnrecognizedClientException", "NoCredentialsError"):
        return "configure credentials (AWS_PROFILE, instance role, aws sso login)"
    if code == "EndpointConnectionError":
        return "check the network, aws.endpoint_url and the region name"
    return ""


def config_failure(message: str) -> list[Check]:
    """What doctor reports when the settings themselves cannot be loaded."""
    return [Check("config", False, message,
                  "fix the named key or environment variable (`env | grep DAYLILY_`); every "
                  "setting is listed in config/daylily-workset.yaml")]


def report(checks: list[Check]) -> dict[str, Any]:
    return {"ok": all(c.ok for c in checks),
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix}
                       for c in checks]}
