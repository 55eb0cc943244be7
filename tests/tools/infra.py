"""Reads template.yaml and prints the DynamoDB table and SQS queue definitions as JSON.

The local stack and the test harness create their tables and queues from this output, so the
template is the one source of truth for keys, indexes and queue attributes.
"""
import json
import sys

import yaml


class _Loader(yaml.SafeLoader):
    pass


def _intrinsic(loader, suffix, node):
    # CloudFormation short forms (!Ref, !GetAtt, !Sub, ...) become {"Fn": args} placeholders.
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {suffix: value}


_Loader.add_multi_constructor("!", _intrinsic)

TABLE_KEYS = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")
# SQS attributes CreateQueue accepts, as strings; the redrive policy is wired by name.
QUEUE_KEYS = ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds")


def extract(path):
    with open(path) as f:
        doc = yaml.load(f, Loader=_Loader)
    out = {"tables": {}, "queues": {}}
    for name, res in doc.get("Resources", {}).items():
        props = res.get("Properties", {}) or {}
        if res.get("Type") == "AWS::DynamoDB::Table":
            table = {k: props[k] for k in TABLE_KEYS if k in props}
            ttl = props.get("TimeToLiveSpecification")
            if ttl:
                table["TimeToLiveAttribute"] = ttl.get("AttributeName")
            out["tables"][name] = table
        elif res.get("Type") == "AWS::SQS::Queue":
            q = {"Attributes": {k: str(props[k]) for k in QUEUE_KEYS if k in props}}
            redrive = props.get("RedrivePolicy")
            if redrive:
                target = redrive.get("deadLetterTargetArn", {})
                ref = target.get("GetAtt") if isinstance(target, dict) else None
                if isinstance(ref, str):
                    ref = ref.split(".")[0]
                elif isinstance(ref, list):
                    ref = ref[0]
                q["DeadLetterQueue"] = ref
                q["MaxReceiveCount"] = int(redrive.get("maxReceiveCount", 1))
            out["queues"][name] = q
    return out


if __name__ == "__main__":
    print(json.dumps(extract(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"), indent=2, sort_keys=True))
