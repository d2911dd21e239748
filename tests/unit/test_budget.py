"""The work budget per connection (server/budget.py), with a virtual clock."""

from __future__ import annotations

import asyncio

import pytest

from localive.clock import VirtualClock
from localive.server.budget import CARRIED_S, CONNECT_S, MAX_WAIT_S, WorkBudgets


def test_audio_in_real_time_never_waits() -> None:
    clock = VirtualClock(100.0)
    budget = WorkBudgets(clock=clock).open("a")
    for _ in range(600):  # a minute of 100 ms chunks: 16 kHz PCM in base64, ~4.3 KB each, cheap to parse
        assert budget.charge(4300, parse_s=0.0002) == 0.0
        clock.now += 0.1


def test_a_flood_of_heavy_frames_waits_for_its_share() -> None:
    clock = VirtualClock(100.0)
    budget = WorkBudgets(share=0.05, burst_s=1.0, clock=clock).open("a")
    waits = [budget.charge(600_000, parse_s=0.05) for _ in range(40)]
    assert waits[0] == 0.0  # the burst
    assert waits[-1] == MAX_WAIT_S  # then the reader waits: the client gets its share of a core only
    clock.now += 100
    assert budget.charge(600_000, parse_s=0.05) == 0.0  # refilled


def test_reconnecting_does_not_refill_the_bucket_and_others_are_unaffected() -> None:
    clock = VirtualClock(100.0)
    budgets = WorkBudgets(clock=clock)
    neighbour = budgets.open("127.0.0.1")  # another client on the same address
    attacker = budgets.open("127.0.0.1")
    for _ in range(40):
        attacker.charge(1_000_000, parse_s=0.05)
    budgets.close(attacker)
    assert budgets.open("127.0.0.1").charge(1_000_000, parse_s=0.05) > 0
    assert neighbour.charge(1_000_000, parse_s=0.05) == 0.0
    assert budgets.open("192.0.2.1").charge(1_000_000, parse_s=0.05) == 0.0


def test_debt_is_forgiven_with_time() -> None:
    clock = VirtualClock(100.0)
    budgets = WorkBudgets(share=0.05, burst_s=1.0, clock=clock)
    budget = budgets.open("a")
    budget.charge(0, parse_s=3.0)
    budgets.close(budget)
    clock.now += (2.0 + 1.0) / 0.05 + 1  # back to a full bucket
    assert budgets.open("a").charge(0, parse_s=0.5) == 0.0


@pytest.mark.parametrize("over_s", [0.05, 0.1])
def test_the_wait_is_the_time_to_earn_the_debt_back(over_s: float) -> None:
    budget = WorkBudgets(share=0.05, burst_s=1.0, clock=VirtualClock(100.0)).open("a")
    assert budget.charge(0, parse_s=1.0 - CONNECT_S + over_s) == pytest.approx(over_s / 0.05)


def test_reconnecting_costs_its_share_too() -> None:
    """A client whose message is refused reconnects and sends it again: each connection is charged."""
    clock = VirtualClock(100.0)
    budgets = WorkBudgets(share=0.05, burst_s=0.5, clock=clock)
    for _ in range(int(0.5 / CONNECT_S) + 5):
        budgets.close(budgets.open("churn"))
    assert budgets.open("churn").charge(1000) > 0
    assert budgets.open("someone else").charge(1000) == 0.0


def test_a_newcomer_on_an_indebted_address_waits_about_a_second_once() -> None:
    """Every local client shares 127.0.0.1: a new one must not pay an attacker's whole debt."""
    clock = VirtualClock(100.0)
    budgets = WorkBudgets(share=0.02, burst_s=0.5, clock=clock)
    attacker = budgets.open("127.0.0.1")
    attacker.charge(0, parse_s=30.0)  # deep in debt
    budgets.close(attacker)
    newcomer = budgets.open("127.0.0.1")
    first = newcomer.charge(100, parse_s=0.0001)
    assert 0 < first <= (CARRIED_S + CONNECT_S) / 0.02 + 0.1
    clock.now += first + 2.0  # after that one wait (and a little more), it is a normal connection again
    assert newcomer.charge(100, parse_s=0.0001) == 0.0


async def test_the_reader_waits_out_its_debt_on_the_clock() -> None:
    clock = VirtualClock(100.0)
    budget = WorkBudgets(share=0.05, burst_s=1.0, clock=clock).open("a")
    paying = asyncio.create_task(budget.pay(0, parse_s=1.18))  # 0.2 s of work over the bucket
    await asyncio.sleep(0)
    owed_s = (1.18 - (1.0 - CONNECT_S)) / 0.05  # earned back at 5 % of a core: 4 s (under MAX_WAIT_S)
    await clock.advance(owed_s - 0.01)
    assert not paying.done()
    await clock.advance(0.02)
    assert paying.done()
    await budget.pay(100)  # nothing owed now: no wait at all
    assert clock.sleepers == 0
