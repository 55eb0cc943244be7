"""What cfn-lint, `sam validate --lint` and checkov do not check in template.yaml.

They accept a misspelt `ReportBatchItemFailures`, a 5-field cron, a queue whose visibility timeout is
shorter than its consumer's timeout, a policy with a `*` action, a function without a log group.
These tests pin what the deployment relies on. `make lint-infra` runs the linters themselves.
"""
import os
import re
import tomllib

import pytest
import yaml

import infra

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE = os.path.join(ROOT, "template.yaml")

# Every function, the binary it runs and what it may do: the actions each one's code calls
# (shared/store, shared/app). IAM has no separate action for SendMessageBatch: sqs:SendMessage covers it.
CONSUME = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
# Query on the table itself, in every function that calls Shopify: the token provider reads a shop's
# OAuth connection records (and the reconciler lists every connected shop).
WEBHOOK_TABLE = {
    ("OrdersTable", frozenset({"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                               "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:Query"})),
    ("OrdersTable/index/gsi2", frozenset({"dynamodb:Query"})),
}
FUNCTIONS = {
    "ShopifyWebhookFunction": {
        "binary": "shopify-webhook",
        # SendMessage: orders due for automatic placement are queued, never placed in the webhook.
        "grants": WEBHOOK_TABLE | {("PlaceQueue", frozenset({"sqs:SendMessage"}))},
    },
    "OrderPlacerFunction": {
        "binary": "order-placer",
        "grants": {
            # Conditional claims and outcomes of orders, AliExpress order ownership, mappings, tokens.
            ("OrdersTable", frozenset({"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                       "dynamodb:Query"})),
            ("PlaceQueue", frozenset(CONSUME)),
        },
    },
    "ShopifyEventBridgeFunction": {
        "binary": "shopify-eventbridge",
        "grants": WEBHOOK_TABLE | {("ShopifyEventQueue", frozenset(CONSUME))},
    },
    "AliexpressPollerFunction": {
        "binary": "aliexpress-poller",
        "grants": {
            ("OrdersTable", frozenset({"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                       "dynamodb:Query"})),
            ("OrdersTable/index/gsi1", frozenset({"dynamodb:Query"})),
            ("TrackingQueue", frozenset({"sqs:SendMessage"})),
            ("PollerContinuationQueue", frozenset({"sqs:SendMessage"} | CONSUME)),
        },
    },
    "TrackingPusherFunction": {
        "binary": "tracking-pusher",
        "grants": {
            # Orders are written by conditional puts; DeleteItem releases the push lease; UpdateItem
            # and Query: the token provider's OAuth connection records.
            ("OrdersTable", frozenset({"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem",
                                       "dynamodb:UpdateItem", "dynamodb:Query"})),
            ("TrackingQueue", frozenset(CONSUME)),
        },
    },
    "ShopifyReconcilerFunction": {
        "binary": "shopify-reconciler",
        "grants": {
            ("OrdersTable", frozenset({"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                       "dynamodb:Query"})),
        },
    },
    "ApiFunction": {
        "binary": "api",
        "grants": {
            # DeleteItem: the dashboard's sign-out deletes its session. Query on the table itself:
            # the registry of connected shops (GET /connections).
            ("OrdersTable", frozenset({"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                       "dynamodb:DeleteItem", "dynamodb:Query"})),
            ("OrdersTable/index/gsi1", frozenset({"dynamodb:Query"})),
            ("OrdersTable/index/gsi2", frozenset({"dynamodb:Query"})),
            ("OrdersTable/index/gsi3", frozenset({"dynamodb:Query"})),
            ("OrdersTable/index/gsi4", frozenset({"dynamodb:Query"})),
            ("TrackingQueue", frozenset({"sqs:SendMessage"})),
        },
    },
}
SECRET = {"If": ["CreateCredentialsSecret", {"Ref": "CredentialsSecret"}, {"Ref": "ExistingCredentialsSecretArn"}]}


def load(path=TEMPLATE):
    with open(path) as f:
        return yaml.load(f, Loader=infra._Loader)


@pytest.fixture(scope="module")
def t():
    return load()


def resources(t, kind):
    return {k: v for k, v in t["Resources"].items() if v["Type"] == kind}


def props(t, name):
    return t["Resources"][name].get("Properties", {})


def function_setting(t, name, key):
    """A function property, falling back to Globals."""
    p = props(t, name)
    return p[key] if key in p else t["Globals"]["Function"][key]


def ref_target(value):
    """The logical id an intrinsic points at: !Ref X, !GetAtt X.Attr, !Sub ${X.Arn}/suffix."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "GetAtt" in value:
            v = value["GetAtt"]
            return (v.split(".")[0] if isinstance(v, str) else v[0])
        if "Sub" in value and isinstance(value["Sub"], str):
            m = re.fullmatch(r"\$\{(\w+)\.Arn\}(/.*)?", value["Sub"])
            if m:
                return m.group(1) + (m.group(2) or "")
    return value


def statements(t, role):
    for policy in props(t, role)["Policies"]:
        stmts = policy["PolicyDocument"]["Statement"]
        yield from (stmts if isinstance(stmts, list) else [stmts])


def as_list(v):
    return v if isinstance(v, list) else [v]


def role_of(t, fn):
    role = props(t, fn)["Role"]
    assert isinstance(role, dict) and "GetAtt" in role, f"{fn}: Role must be !GetAtt <its own role>.Arn"
    return ref_target(role)


def queue_consumers(t):
    """(queue logical id, function logical id, event properties) for every SQS event source."""
    for fn in resources(t, "AWS::Serverless::Function"):
        for ev in (props(t, fn).get("Events") or {}).values():
            if ev["Type"] == "SQS":
                yield ref_target(ev["Properties"]["Queue"]), fn, ev["Properties"]


def test_the_template_uses_no_yaml_anchors_or_aliases():
    # CloudFormation's YAML parser does not resolve them; PyYAML (and so these tests) would.
    with open(TEMPLATE) as f:
        events = list(yaml.parse(f))
    assert not [e for e in events if isinstance(e, yaml.AliasEvent)]
    assert not [e for e in events if getattr(e, "anchor", None)]


def test_every_function_is_built_by_cargo_lambda_from_a_binary_its_crate_declares(t):
    fns = resources(t, "AWS::Serverless::Function")
    assert set(fns) == set(FUNCTIONS)
    for name, res in fns.items():
        meta = res["Metadata"]
        assert meta["BuildMethod"] == "rust-cargolambda"
        binary = meta["BuildProperties"]["Binary"]
        assert binary == FUNCTIONS[name]["binary"]
        crate = os.path.join(ROOT, props(t, name)["CodeUri"])
        with open(os.path.join(crate, "Cargo.toml"), "rb") as f:
            bins = {b["name"] for b in tomllib.load(f).get("bin", [])}
        assert binary in bins, f"{name}: {binary} is not a [[bin]] of {crate}"
        assert function_setting(t, name, "Runtime") == "provided.al2023"
        assert function_setting(t, name, "Handler") == "bootstrap"
        assert function_setting(t, name, "Architectures") == [{"Ref": "Architecture"}]
        # Sizing is chosen per function and written down in the template's header.
        assert isinstance(props(t, name)["MemorySize"], int) and isinstance(props(t, name)["Timeout"], int)
    assert t["Parameters"]["Architecture"]["Default"] == "arm64"
    assert set(t["Parameters"]["Architecture"]["AllowedValues"]) == {"arm64", "x86_64"}


def test_functions_get_the_configuration_their_code_reads(t):
    env_global = t["Globals"]["Function"]["Environment"]["Variables"]
    assert ref_target(env_global["TABLE_NAME"]) == "OrdersTable"
    assert env_global["CREDENTIALS_SECRET_ID"] == SECRET
    for name, spec in FUNCTIONS.items():
        env = dict(env_global, **(props(t, name).get("Environment", {}).get("Variables", {})))
        crate = os.path.join(ROOT, props(t, name)["CodeUri"])
        with open(os.path.join(crate, "Cargo.toml"), "rb") as f:
            path = next(b["path"] for b in tomllib.load(f)["bin"] if b["name"] == spec["binary"])
        with open(os.path.join(crate, path)) as f:
            main = f.read()
        if "Config::from_env(true)" in main:
            assert ref_target(env["TRACKING_QUEUE_URL"]) == "TrackingQueue", name
        if "CONTINUATION_QUEUE_URL" in main or "continuation_queue_url" in main:
            assert ref_target(env["CONTINUATION_QUEUE_URL"]) == "PollerContinuationQueue", name


def test_the_pusher_knows_when_a_failure_sends_its_message_to_the_dead_letter_queue(t):
    env = props(t, "TrackingPusherFunction")["Environment"]["Variables"]
    assert int(env["TRACKING_MAX_RECEIVES"]) == props(t, "TrackingQueue")["RedrivePolicy"]["maxReceiveCount"]


def test_sqs_event_sources_report_batch_item_failures_with_the_exact_spelling(t):
    consumers = list(queue_consumers(t))
    by_fn = {fn: p for _, fn, p in consumers}
    for fn in ("TrackingPusherFunction", "ShopifyEventBridgeFunction"):
        assert by_fn[fn]["FunctionResponseTypes"] == ["ReportBatchItemFailures"], fn
    for queue, fn, p in consumers:
        # Any other spelling is silently ignored by Lambda: a partial failure would redrive the whole batch.
        assert p.get("FunctionResponseTypes", ["ReportBatchItemFailures"]) == ["ReportBatchItemFailures"]
        assert isinstance(p["BatchSize"], int) and p["BatchSize"] >= 1
        mc = p["ScalingConfig"]["MaximumConcurrency"]
        if isinstance(mc, dict):
            mc = t["Parameters"][mc["Ref"]]["Default"]
        assert 2 <= int(mc) <= 1000, f"{fn}: SQS MaximumConcurrency must be 2..1000"


def test_each_queue_stays_invisible_for_six_times_its_consumers_timeout(t):
    consumers = list(queue_consumers(t))
    assert {q for q, _, _ in consumers} >= {"TrackingQueue", "PollerContinuationQueue", "ShopifyEventQueue"}
    for queue, fn, _ in consumers:
        visibility = props(t, queue)["VisibilityTimeout"]
        assert visibility >= 6 * props(t, fn)["Timeout"], f"{queue} vs {fn}"
    # The figure the tests and the local stack see is the same (infra.py reads the template).
    out = infra.extract(TEMPLATE)
    assert int(out["queues"]["TrackingQueue"]["Attributes"]["VisibilityTimeout"]) >= 6 * props(
        t, "TrackingPusherFunction")["Timeout"]


def test_every_consumed_queue_has_a_dead_letter_queue_that_outlives_it(t):
    for queue, _, _ in queue_consumers(t):
        redrive = props(t, queue)["RedrivePolicy"]
        dlq = ref_target(redrive["deadLetterTargetArn"])
        assert 1 <= redrive["maxReceiveCount"] <= 20
        # SQS keeps the original enqueue time when it moves a message: the DLQ must keep it longer.
        assert props(t, dlq)["MessageRetentionPeriod"] > props(t, queue)["MessageRetentionPeriod"], queue


def test_the_poller_runs_on_an_eventbridge_rule_with_a_six_field_cron(t):
    events = props(t, "AliexpressPollerFunction")["Events"]
    schedules = [e for e in events.values() if e["Type"].startswith("Schedule")]
    assert len(schedules) == 1
    # A rule (Type: Schedule), not EventBridge Scheduler (ScheduleV2): the handler parses the rule's envelope.
    assert schedules[0]["Type"] == "Schedule"
    assert schedules[0]["Properties"]["Schedule"] == {"Ref": "SyncSchedule"}
    param = t["Parameters"]["SyncSchedule"]
    default = param["Default"]
    assert default == "cron(0 2,14 * * ? *)"
    fields = re.fullmatch(r"cron\((.*)\)", default).group(1).split(" ")
    assert len(fields) == 6
    # EventBridge requires `?` in exactly one of day-of-month and day-of-week.
    assert (fields[2] == "?") != (fields[4] == "?")
    allowed = re.compile(param["AllowedPattern"])
    assert allowed.fullmatch(default)
    assert not allowed.fullmatch("cron(0 2,14 * * *)")
    events_cont = [e for e in events.values() if e["Type"] == "SQS"]
    assert [ref_target(e["Properties"]["Queue"]) for e in events_cont] == ["PollerContinuationQueue"]


def test_no_function_role_has_a_wildcard_action_or_resource(t):
    for fn in FUNCTIONS:
        role = role_of(t, fn)
        for s in statements(t, role):
            assert s["Effect"] == "Allow"
            for action in as_list(s["Action"]):
                assert "*" not in action, f"{role}: {action}"
            for resource in as_list(s["Resource"]):
                assert resource != "*" and not (isinstance(resource, str) and resource.endswith("*")), role
                assert isinstance(resource, dict), f"{role}: {resource!r} is not an ARN from the template"
        assert "ManagedPolicyArns" not in props(t, role), f"{role}: managed policies grant '*' resources"
        assert "Policies" not in props(t, fn), f"{fn}: SAM policies are ignored when Role is set"


def test_each_function_may_do_exactly_what_its_code_does(t):
    for fn, spec in FUNCTIONS.items():
        role = role_of(t, fn)
        grants = {}
        for s in statements(t, role):
            for resource in as_list(s["Resource"]):
                key = "secret" if resource == SECRET else ref_target(resource)
                grants.setdefault(key, set()).update(as_list(s["Action"]))
        log_group = props(t, fn)["LoggingConfig"]["LogGroup"]["Ref"]
        assert grants.pop(log_group) == {"logs:CreateLogStream", "logs:PutLogEvents"}, fn
        assert grants.pop("secret") == {"secretsmanager:GetSecretValue"}, fn
        assert {(k, frozenset(v)) for k, v in grants.items()} == spec["grants"], fn


def test_every_function_logs_json_to_its_own_log_group_with_a_retention(t):
    groups = resources(t, "AWS::Logs::LogGroup")
    used = set()
    for fn in FUNCTIONS:
        cfg = props(t, fn)["LoggingConfig"]
        assert cfg["LogFormat"] == "JSON"
        group = cfg["LogGroup"]["Ref"]
        assert group in groups and group not in used
        used.add(group)
        assert props(t, group)["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        # Same condition as its function, so an optional function never leaves a dangling group.
        assert t["Resources"][group].get("Condition") == t["Resources"][fn].get("Condition")
    assert t["Parameters"]["LogRetentionDays"]["Default"] == 30
    for name in groups:
        assert props(t, name)["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name


def test_the_http_api_routes_and_throttling(t):
    api = props(t, "HttpApi")
    assert t["Resources"]["HttpApi"]["Type"] == "AWS::Serverless::HttpApi"
    assert set(api["DefaultRouteSettings"]) >= {"ThrottlingBurstLimit", "ThrottlingRateLimit"}
    assert "Auth" not in api  # the webhook is protected by Shopify's HMAC, the merchant API by its bearer token
    routes = {}
    for fn in FUNCTIONS:
        for ev in (props(t, fn).get("Events") or {}).values():
            if ev["Type"] == "HttpApi":
                assert ev["Properties"]["ApiId"] == {"Ref": "HttpApi"}
                assert "Auth" not in ev["Properties"]
                routes[(ev["Properties"]["Method"], ev["Properties"]["Path"])] = fn
    assert routes == {
        ("POST", "/webhooks/shopify"): "ShopifyWebhookFunction",
        ("GET", "/health"): "ApiFunction",
        ("ANY", "/shops/{proxy+}"): "ApiFunction",
        ("ANY", "/app"): "ApiFunction",
        ("ANY", "/app/{proxy+}"): "ApiFunction",
        # Connecting stores must be reachable on AWS too, not only through make local.
        ("GET", "/connect/{proxy+}"): "ApiFunction",
        ("GET", "/connections"): "ApiFunction",
    }


def test_functions_read_the_one_secret_through_the_extension_layer(t):
    layers = t["Globals"]["Function"]["Layers"]
    assert len(layers) == 1
    default_arns = t["Mappings"]["SecretsExtensionLayer"]["us-east-1"]
    assert "Arm64" in default_arns["arm64"] and "Arm64" not in default_arns["x86"]
    for arn in default_arns.values():
        assert re.fullmatch(r"arn:aws:lambda:us-east-1:\d{12}:layer:AWS-Parameters-and-Secrets-Lambda-Extension"
                            r"(-Arm64)?:\d+", arn)
    secret = t["Resources"]["CredentialsSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Condition"] == "CreateCredentialsSecret"
    gen = secret["Properties"]["GenerateSecretString"]
    # The generated document is one the functions accept: an admin token (>= 16 chars) and no shops yet.
    assert gen["GenerateStringKey"] == "admin_token" and gen["PasswordLength"] >= 16
    assert yaml.safe_load(gen["SecretStringTemplate"]) == {"shops": {}}


def test_dead_letter_queues_and_function_errors_are_alarmed(t):
    alarms = resources(t, "AWS::CloudWatch::Alarm")
    watched = {}
    for name, res in alarms.items():
        p = res["Properties"]
        dims = {d["Name"]: ref_target(d["Value"]) for d in p.get("Dimensions", [])}
        watched[(p["Namespace"], p["MetricName"], next(iter(dims.values()), None))] = res.get("Condition")
        assert p["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
    dlqs = {ref_target(props(t, q)["RedrivePolicy"]["deadLetterTargetArn"])
            for q in resources(t, "AWS::SQS::Queue") if "RedrivePolicy" in props(t, q)}
    assert dlqs == {"TrackingDeadLetterQueue", "PollerContinuationDeadLetterQueue", "ShopifyEventDeadLetterQueue",
                    "PlaceDeadLetterQueue"}
    for dlq in dlqs:
        key = ("AWS/SQS", "ApproximateNumberOfMessagesVisible", dlq)
        assert key in watched, f"no alarm on {dlq}"
        assert watched[key] == t["Resources"][dlq].get("Condition")
    for fn in FUNCTIONS:
        key = ("AWS/Lambda", "Errors", fn)
        assert key in watched, f"no Errors alarm on {fn}"
        assert watched[key] == t["Resources"][fn].get("Condition")
    assert t["Resources"]["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"
    # Orders reconciliation recovered (lost webhooks), over all shops: the EMF metric it emits.
    assert ("dropsync", "ReconcileMissedOrders", None) in watched


def test_the_eventbridge_path_exists_only_with_an_event_source(t):
    optional = ["ShopifyEventBus", "ShopifyEventRule", "ShopifyEventQueue", "ShopifyEventDeadLetterQueue",
                "ShopifyEventQueuePolicy", "ShopifyEventBridgeFunction", "ShopifyEventBridgeLogGroup",
                "ShopifyEventBridgeRole"]
    for name in optional:
        assert t["Resources"][name].get("Condition") == "HasEventSource", name
    assert t["Parameters"]["ShopifyEventSourceName"]["Default"] == ""
    bus = props(t, "ShopifyEventBus")
    assert bus["Name"] == bus["EventSourceName"] == {"Ref": "ShopifyEventSourceName"}
    rule = props(t, "ShopifyEventRule")
    assert rule["EventPattern"]["detail-type"] == ["shopifyWebhook"]
    target = rule["Targets"][0]
    assert ref_target(target["Arn"]) == "ShopifyEventQueue"
    assert ref_target(target["DeadLetterConfig"]["Arn"]) == "ShopifyEventDeadLetterQueue"
    policy = props(t, "ShopifyEventQueuePolicy")["PolicyDocument"]["Statement"][0]
    assert policy["Principal"] == {"Service": "events.amazonaws.com"}
    assert ref_target(policy["Condition"]["ArnEquals"]["aws:SourceArn"]) == "ShopifyEventRule"


def test_the_table_keeps_its_data_safe(t):
    p = props(t, "OrdersTable")
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert p["SSESpecification"]["SSEEnabled"] is True
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert p["DeletionProtectionEnabled"] == {"Ref": "DeletionProtection"}
    gsis = {g["IndexName"]: g for g in p["GlobalSecondaryIndexes"]}
    assert gsis["gsi1"]["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["shop", "order_id"]}
    assert gsis["gsi2"]["Projection"] == {"ProjectionType": "ALL"}
    assert gsis["gsi3"]["Projection"] == {"ProjectionType": "ALL"}
    # The tabs' counts read keys only, over gsi2's keys.
    assert gsis["gsi4"]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert gsis["gsi4"]["KeySchema"] == gsis["gsi2"]["KeySchema"]


def test_the_outputs_a_merchant_needs(t):
    out = t["Outputs"]
    for name in ("WebhookUrl", "ApiBaseUrl", "TableName", "CredentialsSecretArn", "TrackingQueueUrl",
                 "TrackingQueueName", "TrackingDeadLetterQueueArn", "TrackingQueueArn",
                 "PollerContinuationQueueUrl", "AlarmTopicArn"):
        assert name in out, name
    assert out["WebhookUrl"]["Value"]["Sub"].endswith("/webhooks/shopify")
    assert "${HttpApi}" in out["WebhookUrl"]["Value"]["Sub"] and "${HttpApi}" in out["ApiBaseUrl"]["Value"]["Sub"]
    assert out["CredentialsSecretArn"]["Value"] == SECRET
    for name, o in out.items():
        if "Condition" in o:
            assert o["Condition"] in t["Conditions"], name


def test_every_checkov_suppression_says_why(t):
    for name, res in t["Resources"].items():
        for skip in ((res.get("Metadata") or {}).get("checkov") or {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), name
            assert len(skip.get("comment", "").split()) >= 8, f"{name}: {skip['id']} needs a written reason"


def test_changing_an_index_or_queue_in_the_template_changes_what_the_local_stack_creates(tmp_path):
    with open(TEMPLATE) as f:
        text = f.read()
    before = infra.extract(TEMPLATE)
    changed = text.replace("NonKeyAttributes: [shop, order_id]", "NonKeyAttributes: [shop, order_id, status]")
    changed = changed.replace("maxReceiveCount: 8", "maxReceiveCount: 4")
    assert changed != text
    path = tmp_path / "template.yaml"
    path.write_text(changed)
    after = infra.extract(str(path))
    gsi1 = lambda out: next(g for g in out["tables"]["OrdersTable"]["GlobalSecondaryIndexes"]
                            if g["IndexName"] == "gsi1")
    assert gsi1(before)["Projection"]["NonKeyAttributes"] == ["shop", "order_id"]
    assert gsi1(after)["Projection"]["NonKeyAttributes"] == ["shop", "order_id", "status"]
    assert before["queues"]["TrackingQueue"]["MaxReceiveCount"] == 8
    assert after["queues"]["TrackingQueue"]["MaxReceiveCount"] == 4
    # Every queue of the template reaches the local stack, the optional EventBridge ones included.
    assert set(before["queues"]) == set(resources(load(), "AWS::SQS::Queue"))


def test_each_function_has_its_reserved_concurrency_parameter_and_a_throttles_alarm(t):
    alarms = resources(t, "AWS::CloudWatch::Alarm")
    throttled = {ref_target(a["Properties"]["Dimensions"][0]["Value"]) for a in alarms.values()
                 if a["Properties"]["MetricName"] == "Throttles"}
    for fn in FUNCTIONS:
        value = props(t, fn)["ReservedConcurrentExecutions"]
        cond, param, none = value["If"]
        assert none == {"Ref": "AWS::NoValue"}, fn
        name = param["Ref"]
        assert t["Parameters"][name]["Type"] == "Number" and t["Parameters"][name]["Default"] == 0, fn
        assert t["Conditions"][cond] == {"Not": [{"Equals": [{"Ref": name}, "0"]}]}, fn
        assert fn in throttled, f"no Throttles alarm on {fn}"


def test_refused_manual_syncs_are_counted_from_the_api_log_line_and_alarmed(t):
    """The abuse limit's alarm counts the api function's refusal log line: the metric filter's
    pattern must match the message the code logs, on the api function's log group."""
    filters = {k: p["Properties"] for k, p in resources(t, "AWS::Logs::MetricFilter").items()}
    f = filters["ManualSyncRefusedMetricFilter"]
    assert ref_target(f["LogGroupName"]) == "ApiLogGroup"
    prefix = re.search(r'\$\.fields\.message = "([^"*]+)\*"', f["FilterPattern"]).group(1)
    with open(os.path.join(ROOT, "functions/api/src/lib.rs")) as src:
        assert f'"{prefix}' in src.read(), "the api function no longer logs the line the filter counts"
    metric = f["MetricTransformations"][0]
    alarms = [a["Properties"] for a in resources(t, "AWS::CloudWatch::Alarm").values()
              if a["Properties"].get("MetricName") == metric["MetricName"]
              and a["Properties"].get("Namespace") == metric["MetricNamespace"]]
    assert alarms and all(a.get("AlarmActions") for a in alarms)
