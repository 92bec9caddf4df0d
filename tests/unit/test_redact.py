from canary.redact import MASK, Redactor


def test_secrets_are_masked_everywhere_in_text_and_data():
    r = Redactor(["hunter2-very-secret", "hunter2", "", "ab", None])
    assert r.text("db error: password hunter2-very-secret rejected") == f"db error: password {MASK} rejected"
    assert r.data({"reason": ["x hunter2 y", 5], "n": None}) == {"reason": [f"x {MASK} y", 5], "n": None}


def test_short_values_are_left_alone():
    assert Redactor(["abc"]).text("abc abc") == "abc abc"
