"""The template is the single source of truth for the table and queue definitions."""
import os

import infra

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_extracted_table_has_the_keys_and_indexes_of_the_template():
    out = infra.extract(os.path.join(ROOT, "template.yaml"))
    table = out["tables"]["OrdersTable"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    assert {g["IndexName"] for g in table["GlobalSecondaryIndexes"]} == {"gsi1", "gsi2", "gsi3", "gsi4"}
    assert table["TimeToLiveAttribute"] == "expires_at"
    q = out["queues"]["TrackingQueue"]
    assert q["DeadLetterQueue"] == "TrackingDeadLetterQueue"
    assert int(q["Attributes"]["VisibilityTimeout"]) >= 6 * 20


def test_a_change_in_the_template_is_what_the_local_stack_and_tests_get(tmp_path):
    with open(os.path.join(ROOT, "template.yaml")) as f:
        text = f.read()
    changed = text.replace("IndexName: gsi2", "IndexName: gsi2renamed").replace(
        "VisibilityTimeout: 180", "VisibilityTimeout: 321")
    path = tmp_path / "template.yaml"
    path.write_text(changed)
    out = infra.extract(str(path))
    names = {g["IndexName"] for g in out["tables"]["OrdersTable"]["GlobalSecondaryIndexes"]}
    assert "gsi2renamed" in names
    assert out["queues"]["TrackingQueue"]["Attributes"]["VisibilityTimeout"] == "321"
