"""``config from-stack STACK``: a settings file from the outputs of infra/daylib.yaml, so a
head node or a user's machine points at exactly the resources the stack made."""

from __future__ import annotations

from typing import Any

import yaml

from daylib.aws import describe
from daylib.config import Settings
from daylib.errors import AwsError, UserError

# Stack output -> (section, key) of the settings it fills.
OUTPUTS = {
    "Region": ("aws", "region"),
    "TableName": ("state", "table"),
    "BucketName": ("storage", "bucket"),
    "WorksetPrefix": ("storage", "prefix"),
    "TopicArn": ("notify", "topic_arn"),
    "DeadLetterQueueUrl": ("dlq", "queue_url"),
    "IntakeQueueUrl": ("intake", "queue_url"),
}


def stack_outputs(cfn: Any, stack: str) -> dict[str, str]:
    """The stack's outputs by key; a clear error if the stack is missing or unfinished."""
    try:
        stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    except AwsError as exc:
        if "does not exist" in str(exc):
            raise UserError(f"CloudFormation stack {stack!r} not found in region "
                            f"{cfn.meta.region_name}; deploy infra/daylib.yaml first") from exc
        raise describe(exc) from exc
    status = stacks[0]["StackStatus"]
    if not status.endswith("_COMPLETE") or "ROLLBACK" in status or "DELETE" in status:
        raise UserError(f"stack {stack!r} is {status}, not ready to use")
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def settings_from_outputs(outputs: dict[str, str]) -> tuple[dict[str, dict[str, Any]],
                                                            list[str]]:
    """(settings sections, outputs this version has no setting for)."""
    data: dict[str, dict[str, Any]] = {}
    unused = []
    for name, (section, key) in OUTPUTS.items():
        if name not in outputs:
            continue
        model = Settings.model_fields[section].annotation if section in Settings.model_fields \
            else None
        if key not in getattr(model, "model_fields", {}):
            unused.append(f"{name}={outputs[name]}")
            continue
        data.setdefault(section, {})[key] = outputs[name]
    missing = [n for n in ("TableName", "BucketName", "Region") if n not in outputs]
    if missing:
        raise UserError(f"stack outputs lack {', '.join(missing)}: is it infra/daylib.yaml?")
    Settings.model_validate(data)
    return data, unused


def render(stack: str, data: dict[str, dict[str, Any]], unused: list[str]) -> str:
    head = (f"# Written by `daylily-workset config from-stack {stack}`; every other setting\n"
            "# keeps its default (see config/daylily-workset.yaml).\n")
    notes = "".join(f"# stack output without a setting in this version: {u}\n"
                    for u in unused)
    return head + notes + yaml.safe_dump(data, sort_keys=False)
