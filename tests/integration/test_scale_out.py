"""Several workers share the members and each serves the exact global Cover-2."""

from __future__ import annotations

import random

import pytest

from risk.plain import PlainCcp, plain_results
from risk.plain_reverse import PlainReverseBook, multiplier
from tests.integration.cluster import Feed, Spawn, Worker, eventually
from tests.integration.test_recovery import (
    apply_plain,
    assert_matches_plain,
    hot_stream,
    reference_data,
    send,
)

pytestmark = pytest.mark.integration


def exact(worker: Worker, plain: PlainCcp) -> bool:
    """Whether the worker serves complete figures equal to the plain recompute."""
    status, document = worker.get("/cover2")
    if status != 200 or not document["complete"]:
        return False
    try:
        assert_matches_plain(worker, plain)
    except AssertionError:
        return False
    return True


async def all_exact(workers: list[Worker], plain: PlainCcp) -> None:
    for worker in workers:
        await eventually(lambda w=worker: exact(w, plain), what=f"{worker.name} exact")
    for worker in workers:  # still exact once all are: nothing counted twice on the way
        assert_matches_plain(worker, plain)


async def test_three_workers_one_killed_then_a_fourth_joins(spawn: Spawn, feed: Feed) -> None:
    rng = random.Random(5)
    workers = [spawn(f"w{i}") for i in (1, 2, 3)]
    for worker in workers:
        await worker.healthy()
    messages, plain = reference_data(rng)
    await send(feed, messages)
    for worker in workers:  # reference data first: a multiplier applies from when it arrives
        await eventually(lambda w=worker: w.get("/cover2")[1]["scenarios"] == 5,
                         what=f"scenarios on {worker.name}")
    stream = hot_stream(rng, 900)

    await send(feed, stream[:300])
    apply_plain(plain, stream[:300])
    await all_exact(workers, plain)
    shares = [set(w.get("/cover2")[1]["partitions"]["local"]) for w in workers]
    assert sorted(p for share in shares for p in share) == [0, 1, 2, 3]
    assert all(shares), shares  # four partitions over three workers: each holds some

    # Settlements in the middle of the stream, out of step with it: everyone through 1,250
    # (after events up to 1,300), M3 through 1,400 (before the events after 1,300). A
    # partition that moves later is replayed on the same side of them.
    await send(feed, [("settlements", "*", {"member": "*", "ts": 1_250.0}),
                      ("settlements", "M3", {"member": "M3", "ts": 1_400.0})])
    plain.settle(None, 1_250.0)
    plain.settle("M3", 1_400.0)
    await all_exact(workers, plain)

    await send(feed, stream[300:450])
    workers[1].kill()
    await send(feed, stream[450:600])
    apply_plain(plain, stream[300:600])
    survivors = [workers[0], workers[2]]
    await all_exact(survivors, plain)
    held = [set(w.get("/cover2")[1]["partitions"]["local"]) for w in survivors]
    assert sorted(p for share in held for p in share) == [0, 1, 2, 3]

    fourth = await spawn("w4").healthy()
    await send(feed, stream[600:])
    apply_plain(plain, stream[600:])
    await all_exact([*survivors, fourth], plain)
    held = [set(w.get("/cover2")[1]["partitions"]["local"]) for w in [*survivors, fourth]]
    assert sorted(p for share in held for p in share) == [0, 1, 2, 3]
    assert held[2], "the new worker holds a partition"

    # The reverse stress test needs every member's own figures, which the views carry now
    # and then: every worker ends with the plain model's k*, credit and liquidity.
    want = plain_multipliers(plain)
    assert want[0] is not None and want[1] is not None, want  # the test means something
    for worker in [*survivors, fourth]:
        await eventually(lambda w=worker: multipliers(w) == want,
                         what=f"k* on {worker.name}")


def plain_multipliers(plain: PlainCcp) -> tuple[float | None, float | None]:
    """k* of the plain model, credit and liquidity, to the reported precision."""
    results = plain_results(plain)
    members = plain.known_members
    scenarios = tuple(plain.scenarios)
    vm = {m: plain.variation_margin(m) for m in members}
    collateral = {m: plain.collateral.get(m, (0.0, 0.0, 0.0)) for m in members}
    provided: dict[str, float] = {}
    for resource in plain.resources.liquid_resources:
        if resource.provider is not None and resource.type.qualifying:
            group = plain.group_of(resource.provider)
            provided[group] = provided.get(group, 0.0) + resource.amount
    book = PlainReverseBook(
        scenarios, {m: plain.group_of(m) for m in members}, vm,
        {(m, s): -plain.loss(m, plain.scenarios[s]) - vm[m] for m in members
         for s in scenarios},
        {m: collateral[m][0] for m in members}, {m: collateral[m][1] for m in members},
        {m: plain.members[m].settlement_obligation if m in plain.members else 0.0
         for m in members}, provided)
    credit = multiplier(book, "credit", results.credit.prefunded)
    liquidity = multiplier(book, "liquidity", results.liquidity.qualifying)
    return (None if credit is None else round(float(credit.k), 6),
            None if liquidity is None else round(float(liquidity.k), 6))


def multipliers(worker: Worker) -> tuple[float | None, float | None]:
    document = worker.get("/cover2")[1]
    credit = document["credit"]["reverse_stress"]["multiplier"]
    liquidity = document["liquidity"]["reverse_stress"]["multiplier"]
    return (None if credit is None else round(credit["k"], 6),
            None if liquidity is None else round(liquidity["k"], 6))
