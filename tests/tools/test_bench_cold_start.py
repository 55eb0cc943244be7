"""The cold-start benchmark measures every function the template deploys, each with a first event
of its trigger's kind, against a hello-world of the same profile; `--only cold_start` runs it."""
import json

import bench


def test_every_function_the_template_deploys_is_measured_with_a_package_and_a_first_event():
    deployed = bench.template_binaries()
    assert {"order-placer", "shopify-reconciler", "shopify-webhook", "api"} <= set(deployed)
    assert bench.FUNCTIONS == deployed
    events = bench.cold_start_events("coldstart-1.myshopify.com", "secret")
    for name in deployed + ["hello"]:
        assert name in bench.PACKAGE_OF, name
        assert name in events, name


def test_the_queue_and_schedule_functions_get_their_trigger_s_event():
    events = bench.cold_start_events("coldstart-1.myshopify.com", "secret")
    placement = json.loads(events["order-placer"]["Records"][0]["body"])
    assert placement == {"shop": "coldstart-1.myshopify.com", "order_id": "820982911946154508"}
    assert events["order-placer"]["Records"][0]["eventSource"] == "aws:sqs"
    assert events["shopify-reconciler"]["detail-type"] == "Scheduled Event"
    assert events["shopify-reconciler"]["source"] == "aws.events"
    # The placer's order is the one the webhook's first event writes.
    webhook_body = json.loads(events["shopify-webhook"]["body"])
    assert str(webhook_body["id"]) == placement["order_id"]


def test_the_profile_is_release_unless_chosen_and_cold_start_runs_alone(monkeypatch):
    monkeypatch.delenv("COLD_START_PROFILE", raising=False)
    assert bench.cold_start_profile() == "release"
    monkeypatch.setenv("COLD_START_PROFILE", "bench-harness")
    assert bench.cold_start_profile() == "bench-harness"
    assert "cold_start" in bench.ONLY


def test_template_binaries_reads_each_build_property(tmp_path):
    t = tmp_path / "template.yaml"
    t.write_text("Resources:\n  A:\n    Metadata:\n      BuildProperties:\n        Binary: one\n"
                 "  B:\n    Metadata:\n      BuildProperties:\n        Binary: two-b\n")
    assert bench.template_binaries(str(t)) == ["one", "two-b"]
