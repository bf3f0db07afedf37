"""The fault proxy's decisions, without a server: faults drawn at their rates for any
seed, and planned faults that happen whatever the seed draws (tests/faultproxy.py)."""

import math
from collections import Counter

import pytest

from tests.fault_mixes import WORKER_FAULTS
from tests.faultproxy import EVERY_SEND, Fault, FaultProxy, Planned

PUT, DELETE = frozenset({"PutObject"}), frozenset({"DeleteObjects"})
SEEDS = (0, 7, 16)
DRAWS = 20_000


def proxy(faults=WORKER_FAULTS, seed=7, plan=()) -> FaultProxy:
    return FaultProxy("http://127.0.0.1:9", faults, seed, plan)  # never started


def put(p: FaultProxy, key: str):
    return p.decide("PUT", f"/bucket/{key}", "PutObject", b"{}")


def delete_body(keys: list[str]) -> bytes:
    objects = "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)
    return (
        '<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' + objects + "</Delete>"
    ).encode()


def delete(p: FaultProxy, keys: list[str]):
    return p.decide("POST", "/bucket?delete", "DeleteObjects", delete_body(keys))


def within(count: int, draws: int, rate: float) -> bool:
    """``count`` hits of ``draws`` independent draws at ``rate``, within 5 standard
    deviations: a false alarm under 1e-6 per check, for any seed."""
    return abs(count / draws - rate) < 5 * math.sqrt(rate * (1 - rate) / draws)


@pytest.mark.parametrize("seed", SEEDS)
def test_each_fault_is_drawn_at_its_rate_for_any_seed(seed):
    p = proxy(seed=seed)
    kinds = Counter()
    for i in range(DRAWS):
        fault = put(p, f"reports/2026-12-01/{i}.json").fault
        kinds[(fault.kind, fault.after) if fault else None] += 1
    for fault in WORKER_FAULTS:
        assert within(kinds[fault.kind, fault.after], DRAWS, fault.rate), (fault, kinds)
    total = sum(f.rate for f in WORKER_FAULTS)
    assert within(DRAWS - kinds[None], DRAWS, total), kinds  # 30 %, to within 1.6 points


def test_the_nth_request_of_an_operation_gets_the_planned_fault_and_draws_nothing():
    slowdown = Fault("slowdown", 1.0, PUT)
    plan = [Planned("PutObject", slowdown, sends=range(2, 4)), Planned("PutObject", None)]
    planned, unplanned = proxy(plan=plan), proxy()
    decisions = [(put(planned, f"k{i}"), put(unplanned, f"k{i}")) for i in range(200)]
    assert decisions[0][0].fault is None and decisions[0][0].planned  # passes untouched
    assert [d.fault for d, _ in decisions[1:3]] == [slowdown, slowdown]
    assert all(d.planned for d, _ in decisions[:3])
    # Every other request draws what it draws without a plan: the plan moved no draw.
    assert [d.fault for d, _ in decisions[3:]] == [u.fault for _, u in decisions[3:]]
    assert not any(d.planned for d, _ in decisions[3:])
    assert any(d.fault for d, _ in decisions[3:])  # 197 draws at 30 %: some fault


def test_a_plan_for_a_key_takes_the_requests_that_name_it_whatever_their_order():
    internal = Fault("internal", 1.0, PUT)
    plan = [Planned("PutObject", internal, key="id-7", sends=range(1, 3))]
    p = proxy(faults=[], plan=plan)
    others = [put(p, f"reports/-/id-{i}.json") for i in (1, 2, 3)]
    sends = [put(p, "reports/-/id-7.json") for _ in range(3)]  # a call and its retries
    assert [d.fault for d in others] == [None, None, None]
    assert [d.fault for d in sends] == [internal, internal, None]


def test_a_planned_refusal_refuses_the_keys_that_contain_its_key_on_every_send():
    refuse = Fault("fail_keys", 1.0, DELETE, key_code="AccessDenied")
    p = proxy(faults=[], plan=[Planned("DeleteObjects", refuse, "r/000001", EVERY_SEND)])
    batch = [f"r/{i:06d}.json" for i in range(5)]
    for _ in range(3):
        decision = delete(p, batch)
        assert (decision.fault, decision.keys, decision.planned) == (
            refuse, ["r/000001.json"], True
        )  # fmt: skip
    assert delete(p, batch[2:]).fault is None  # a batch without it: drawn, here nothing


def test_the_first_plan_listed_wins_and_every_matching_plan_counts_the_request():
    internal, refuse = Fault("internal", 1.0, DELETE), Fault("fail_keys", 1.0, DELETE)
    plan = [
        Planned("DeleteObjects", internal, key="a"),
        Planned("DeleteObjects", refuse, key="a", sends=EVERY_SEND),
    ]
    p = proxy(faults=[], plan=plan)
    assert [delete(p, ["a", "b"]).fault for _ in range(3)] == [internal, refuse, refuse]
    p.set_faults([], plan)  # counts start afresh
    assert delete(p, ["a"]).fault == internal
