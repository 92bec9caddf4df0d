"""The CI job summary: a release's outputs as Markdown a person reads."""

from canary.summary import markdown

PROMOTED = {
    "phase": "promoted", "message": "promoted reg.example.com/odoo:v2: passed its analysis at 10%",
    "image": "reg.example.com/odoo:v2", "image_digest": "sha256:" + "b" * 64,
    "production_image": "reg.example.com/odoo:v2", "production_digest": "sha256:" + "b" * 64,
    "previous_image": "reg.example.com:5000/odoo:v1", "previous_tag": "v1", "canary_image": "",
    "canary_weight": 0, "failed_image": "", "failure_reason": "",
    "analysis": {"decision": "pass", "reason": "healthy: 0.0% health check errors", "weight": 10,
                 "seconds": 900.2, "checks": 30, "probes": 300, "probe_failures": 1, "error_rate": 0.333,
                 "canary": {"requests": 812, "error_rate": 0.25, "p95": 0.231},
                 "stable": {"requests": 7400, "error_rate": 0.3, "p95": 0.198}},
}


def test_a_promotion_reads_as_words_with_the_rollback_recipe():
    text = markdown(PROMOTED)
    assert text.startswith("## Canary release: Promoted")
    assert "| Previous (instant rollback) | reg.example.com:5000/odoo:v1 |" in text
    assert "### Analysis: pass at 10 % traffic" in text
    assert "299/300 answered 200" in text and "| canary | 812 | 0.2 % | 231 ms |" in text
    assert "`pulumi config set image_tag v1 && pulumi up`" in text
    assert "{" not in text, "no raw JSON"


def test_a_rollback_says_why_and_a_first_deploy_has_no_empty_rows():
    text = markdown({"phase": "rolled_back", "failed_image": "odoo:broken",
                     "failure_reason": "5xx rate 12.0% | above 5%", "production_image": "odoo:v1"})
    assert "## Canary release: Rolled back" in text
    assert "| Failure reason | 5xx rate 12.0% \\| above 5% |" in text  # a | does not break the table
    first = markdown({"phase": "promoted", "production_image": "odoo:v1", "analysis": {}})
    assert "Analysis" not in first and "Canary |" not in first and "—" not in first
