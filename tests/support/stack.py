"""infra/daylib.yaml deployed into a moto server, with the pieces moto accepts but does not
create (see shared TESTBED.md) wired by direct API calls, each as the template declares it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "daylib.yaml"


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, ...) read as plain values."""


def _tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> object:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


CfnLoader.add_multi_constructor("!", _tag)


def template() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)
    return doc


ALARMS = ("DeadLetterDepthAlarm", "IntakeAgeAlarm", "OldestReadyAlarm", "StaleMonitorAlarm")


def resource(logical_id: str) -> dict[str, Any]:
    res: dict[str, Any] = template()["Resources"][logical_id]["Properties"]
    return res


class Stack:
    def __init__(self, url: str, region: str, name: str, bucket: str,
                 prefix: str = "worksets/") -> None:
        self.url, self.region, self.name, self.bucket, self.prefix = (
            url, region, name, bucket, prefix)
        self.outputs: dict[str, str] = {}

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name=self.region)

    def deploy(self) -> dict[str, str]:
        cfn = self.client("cloudformation")
        params = {"BucketName": self.bucket, "WorksetPrefix": self.prefix,
                  "TableName": f"{self.name}-state", "TopicName": f"{self.name}-events",
                  "IntakeQueueName": f"{self.name}-intake",
                  "DeadLetterQueueName": f"{self.name}-dlq", "MonitoredCluster": "local"}
        cfn.create_stack(StackName=self.name, TemplateBody=TEMPLATE.read_text(),
                         Parameters=[{"ParameterKey": k, "ParameterValue": v}
                                     for k, v in params.items()],
                         Capabilities=["CAPABILITY_IAM"])
        cfn.get_waiter("stack_create_complete").wait(
            StackName=self.name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        stack = cfn.describe_stacks(StackName=self.name)["Stacks"][0]
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        return self.outputs

    def queue_arn(self, url: str) -> str:
        attrs = self.client("sqs").get_queue_attributes(QueueUrl=url,
                                                         AttributeNames=["QueueArn"])
        return str(attrs["Attributes"]["QueueArn"])

    def missing(self) -> list[str]:
        """Resources of the template that the emulator did not create."""
        out = self.outputs
        sqs, s3, ddb = self.client("sqs"), self.client("s3"), self.client("dynamodb")
        gaps = []
        attrs = sqs.get_queue_attributes(QueueUrl=out["IntakeQueueUrl"],
                                         AttributeNames=["Policy"]).get("Attributes", {})
        if "Policy" not in attrs:
            gaps.append("IntakeQueuePolicy")
        conf = s3.get_bucket_notification_configuration(Bucket=self.bucket)
        if not conf.get("QueueConfigurations"):
            gaps.append("WorksetBucket.NotificationConfiguration")
        bucket = resource("WorksetBucket")
        try:
            s3.get_public_access_block(Bucket=self.bucket)
        except s3.exceptions.ClientError:
            gaps.append("WorksetBucket.PublicAccessBlockConfiguration")
        try:
            s3.get_bucket_encryption(Bucket=self.bucket)
        except s3.exceptions.ClientError:
            gaps.append("WorksetBucket.BucketEncryption")
        if s3.get_bucket_versioning(Bucket=self.bucket).get("Status") != \
                bucket["VersioningConfiguration"]["Status"]:
            gaps.append("WorksetBucket.VersioningConfiguration")
        ttl = ddb.describe_time_to_live(TableName=out["TableName"])["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") != "ENABLED":
            gaps.append("StateTable.TimeToLiveSpecification")
        pitr = ddb.describe_continuous_backups(TableName=out["TableName"])[
            "ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        if pitr.get("PointInTimeRecoveryStatus") != "ENABLED":
            gaps.append("StateTable.PointInTimeRecoverySpecification")
        alarms = {a["AlarmName"] for a in self.client("cloudwatch").describe_alarms()[
            "MetricAlarms"]}
        for logical in ALARMS:
            if self.alarm_name(logical) not in alarms:
                gaps.append(logical)
        return gaps

    def alarm_name(self, logical: str) -> str:
        return (str(resource(logical)["AlarmName"]).replace("${AWS::StackName}", self.name)
                .replace("${MonitoredCluster}", "local"))

    def wire(self, gaps: list[str]) -> None:
        """Create each missing piece as the template declares it."""
        out, account = self.outputs, self.outputs["TopicArn"].split(":")[4]
        intake_arn = self.queue_arn(out["IntakeQueueUrl"])
        if "IntakeQueuePolicy" in gaps:
            doc = json.loads(json.dumps(resource("IntakeQueuePolicy")["PolicyDocument"]))
            for st in doc["Statement"]:
                st["Resource"] = intake_arn
                st["Condition"] = {
                    "ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{self.bucket}"},
                    "StringEquals": {"aws:SourceAccount": account}}
            self.client("sqs").set_queue_attributes(QueueUrl=out["IntakeQueueUrl"],
                                                    Attributes={"Policy": json.dumps(doc)})
        if "WorksetBucket.NotificationConfiguration" in gaps:
            declared = resource("WorksetBucket")["NotificationConfiguration"]
            conf = [{"QueueArn": intake_arn, "Events": [q["Event"]],
                     "Filter": {"Key": {"FilterRules": [
                         {"Name": "prefix", "Value": self.prefix}]}}}
                    for q in declared["QueueConfigurations"]]
            self.client("s3").put_bucket_notification_configuration(
                Bucket=self.bucket, NotificationConfiguration={"QueueConfigurations": conf})
        s3, bucket = self.client("s3"), resource("WorksetBucket")
        if "WorksetBucket.PublicAccessBlockConfiguration" in gaps:
            s3.put_public_access_block(
                Bucket=self.bucket,
                PublicAccessBlockConfiguration=bucket["PublicAccessBlockConfiguration"])
        if "WorksetBucket.BucketEncryption" in gaps:
            rules = [{"ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"]}
                     for r in bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]]
            s3.put_bucket_encryption(Bucket=self.bucket,
                                     ServerSideEncryptionConfiguration={"Rules": rules})
        if "WorksetBucket.VersioningConfiguration" in gaps:
            s3.put_bucket_versioning(Bucket=self.bucket,
                                     VersioningConfiguration=bucket["VersioningConfiguration"])
        ddb = self.client("dynamodb")
        table = resource("StateTable")
        if "StateTable.TimeToLiveSpecification" in gaps:
            ddb.update_time_to_live(TableName=out["TableName"],
                                    TimeToLiveSpecification=table["TimeToLiveSpecification"])
        if "StateTable.PointInTimeRecoverySpecification" in gaps:
            ddb.update_continuous_backups(
                TableName=out["TableName"],
                PointInTimeRecoverySpecification=table["PointInTimeRecoverySpecification"])
        for logical in ALARMS:
            if logical in gaps:
                self._put_alarm(logical)

    def _put_alarm(self, logical: str) -> None:
        """The alarm as declared, its parameter references filled as deployed."""
        p, out = resource(logical), self.outputs
        filled = {"IntakeAgeAlarmSeconds": 900.0, "OldestReadyAlarmSeconds": 3600.0,
                  "MetricsNamespace": "Daylily/Worksets", "MonitoredCluster": "local"}
        queues = {"DeadLetterQueue": out["DeadLetterQueueUrl"],
                  "IntakeQueue": out["IntakeQueueUrl"]}

        def value(v: Any) -> Any:  # the loader reads !Ref X as "X", !GetAtt Q.QueueName so
            if isinstance(v, str) and v in filled:
                return filled[v]
            if isinstance(v, str) and v.endswith(".QueueName"):
                return queues[v.split(".")[0]].rsplit("/", 1)[-1]
            return v

        self.client("cloudwatch").put_metric_alarm(
            AlarmName=self.alarm_name(logical), Namespace=value(p["Namespace"]),
            MetricName=p["MetricName"], Statistic=p["Statistic"], Period=p["Period"],
            EvaluationPeriods=p["EvaluationPeriods"], Threshold=float(value(p["Threshold"])),
            ComparisonOperator=p["ComparisonOperator"],
            TreatMissingData=p["TreatMissingData"],
            Dimensions=[{"Name": d["Name"], "Value": str(value(d["Value"]))}
                        for d in p.get("Dimensions", [])])

    def policy(self, output: str) -> dict[str, Any]:
        """A managed policy's document as the emulator stored it (references resolved)."""
        iam = self.client("iam")
        arn = self.outputs[output]
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        doc = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"][
            "Document"]
        return json.loads(doc) if isinstance(doc, str) else dict(doc)
