"""The release's decision logic, case by case (pure)."""

from canary import plan as P

V1, V2, BAD = "app:v1#a", "app:v2#a", "app:bad#a"


def desired(rev=V2, steps=(10,), auto=True, retry=False, promote=False):
    return P.Desired(revision=rev, steps=steps, auto_promote=auto, retry=retry, promote=promote)


def host(prod=V1, running=True, canary=None, canary_running=True, split=None):
    return P.Observed(production_revision=prod, production_running=running, canary_revision=canary,
                      canary_running=canary_running, split_weight=split)


def test_empty_host_deploys_straight_to_production():
    assert P.plan(desired(), P.Recorded(), host(prod=None)).kind == P.DEPLOY


def test_nothing_to_do_when_production_runs_it():
    assert P.plan(desired(V1), P.Recorded(), host()).kind == P.NOOP


def test_leftover_canary_is_cleaned_up():
    assert P.plan(desired(V1), P.Recorded(), host(canary=V2, split=10)).kind == P.CLEANUP


def test_new_revision_is_analysed_at_its_steps():
    a = P.plan(desired(steps=(10, 25, 50)), P.Recorded(), host())
    assert (a.kind, a.steps, a.reuse_canary) == (P.ANALYSE, (10, 25, 50), False)


def test_rolled_back_revision_is_blocked_until_retry():
    r = P.Recorded(phase=P.ROLLED_BACK, failed_revision=BAD, failure_reason="5xx 40%")
    a = P.plan(desired(BAD), r, host())
    assert (a.kind, a.reason) == (P.BLOCKED, "5xx 40%")
    assert P.plan(desired(BAD, retry=True), r, host()).kind == P.ANALYSE
    assert P.plan(desired(V2), r, host()).kind == P.ANALYSE


def test_previous_revision_is_an_instant_rollback():
    r = P.Recorded(phase=P.PROMOTED, previous_revision=V1)
    assert P.plan(desired(V1), r, host(prod=V2)).kind == P.REPLACE


def test_percentage_zero_aborts_a_canary_and_is_otherwise_nothing():
    assert P.plan(desired(steps=(0,)), P.Recorded(), host(canary=V2, split=10)).kind == P.ABORT
    assert P.plan(desired(steps=(0,)), P.Recorded(), host()).kind == P.NOOP


def test_percentage_hundred_promotes_without_analysis():
    assert P.plan(desired(steps=(100,)), P.Recorded(), host()).kind == P.REPLACE


def held(weight=10, passed=10, phase=P.HOLDING):
    return P.Recorded(phase=phase, canary_revision=V2, canary_weight=weight, passed_weight=passed)


def test_held_canary_stays_held():
    assert P.plan(desired(auto=False), held(), host(canary=V2, split=10)).kind == P.NOOP


def test_held_canary_is_promoted_without_new_analysis():
    assert P.plan(desired(auto=True), held(), host(canary=V2, split=10)).kind == P.PROMOTE


def test_a_person_promotes_a_held_canary_once_at_any_weight():
    """canary:promote names the held canary's tag: promoted as it is, even at a weight it
    has not been analysed at or after an inconclusive analysis; auto_promote stays false."""
    for r, split in ((held(75, 75), 75), (held(25, 10), 25), (held(phase=P.INCONCLUSIVE, passed=0), 10)):
        a = P.plan(desired(steps=(75,), auto=False, promote=True), r, host(canary=V2, split=split))
        assert a.kind == P.PROMOTE and "by hand" in a.reason, (r, a)
    # Nothing held: the key does nothing (a new revision is analysed as always)...
    assert P.plan(desired(promote=True), P.Recorded(), host()).kind == P.ANALYSE
    # ...and once promoted, production runs it: nothing to do.
    assert P.plan(desired(promote=True), P.Recorded(phase=P.PROMOTED), host(prod=V2)).kind == P.NOOP


def test_more_traffic_reanalyses_the_same_canary():
    a = P.plan(desired(steps=(25,), auto=False), held(), host(canary=V2, split=10))
    assert (a.kind, a.steps, a.reuse_canary) == (P.ANALYSE, (25,), True)


def test_less_traffic_only_reroutes():
    a = P.plan(desired(steps=(10,), auto=False), held(25, 25), host(canary=V2, split=25))
    assert (a.kind, a.steps) == (P.ROUTE, (10,))


def test_inconclusive_canary_is_analysed_again():
    a = P.plan(desired(auto=True), held(phase=P.INCONCLUSIVE, passed=0), host(canary=V2, split=10))
    assert (a.kind, a.reuse_canary) == (P.ANALYSE, True)


def test_interrupted_analysis_reuses_the_running_canary():
    a = P.plan(desired(), P.Recorded(phase="interrupted", canary_revision=V2), host(canary=V2, split=10))
    assert (a.kind, a.reuse_canary) == (P.ANALYSE, True)


def test_crashed_canary_is_replaced():
    a = P.plan(desired(), held(), host(canary=V2, canary_running=False, split=10))
    assert (a.kind, a.reuse_canary) == (P.ANALYSE, False)


def test_stopped_production_is_restarted():
    assert P.plan(desired(V1), P.Recorded(), host(running=False)).kind == P.REPLACE


def test_blocked_revision_with_a_leftover_canary_cleans_it_up():
    r = P.Recorded(phase=P.ROLLED_BACK, failed_revision=V2, failure_reason="down")
    a = P.plan(desired(V2), r, host(canary=V2, split=None))
    assert (a.kind, a.cleanup) == (P.BLOCKED, True)


# -- never the last healthy backend -----------------------------------------------------
def sick_production(**kw):
    return P.Observed(production_revision=V2, production_running=True, canary_revision=V2,
                      canary_running=True, split_weight=100, production_healthy=False, **kw)


def test_failed_promotion_rerun_restores_production_behind_the_canary_not_cleanup():
    # The same config again after the new production failed: never remove the canary.
    a = P.plan(desired(V2), P.Recorded(), sick_production(canary_healthy=True))
    assert a.kind == P.RESTORE


def test_a_fixed_revision_replaces_sick_production_behind_the_canary():
    fixed = "app:v2#b"
    assert P.plan(desired(fixed), P.Recorded(), sick_production(canary_healthy=True)).kind == P.RESTORE


def test_nothing_healthy_changes_nothing():
    for d in (desired(V2), desired(V1), desired(V2, steps=(0,))):
        assert P.plan(d, P.Recorded(), sick_production(canary_healthy=False)).kind == P.HALT


def test_a_blocked_revision_is_not_restored_into_production():
    r = P.Recorded(failed_revision=BAD, failure_reason="5xx")
    a = P.plan(desired(BAD), r, sick_production(canary_healthy=True))
    assert (a.kind, a.cleanup) == (P.BLOCKED, False)


def test_healthy_production_with_canary_plans_as_before():
    o = P.Observed(production_revision=V1, production_running=True, canary_revision=V2,
                   canary_running=True, split_weight=10, production_healthy=True, canary_healthy=True)
    assert P.plan(desired(V1), P.Recorded(), o).kind == P.CLEANUP


def test_an_instant_rollback_cut_short_reuses_the_running_canary_of_the_previous_revision():
    r = P.Recorded(phase=P.PROMOTED, previous_revision=V1)
    a = P.plan(desired(V1), r, host(prod=V2, canary=V1, split=100))
    assert a.kind == P.REPLACE  # not analysed again
