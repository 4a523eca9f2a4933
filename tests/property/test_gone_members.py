"""Members that are gone are forgotten: their rows go to members that come later, and the
results stay the plain model's, also when a forgotten member comes back."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from risk.ccp import Ccp
from risk.model import Member
from risk.plain import PlainCcp, plain_results
from tests.property import strategies as s
from tests.property.test_ccp_matches_plain import (
    apply_hot,
    apply_reference,
    assert_same,
    play,
)


@settings(max_examples=200, deadline=None)
@given(s.steps, st.sampled_from(s.MEMBERS), s.steps)
def test_a_member_closed_out_settled_and_removed_is_forgotten(
        before: list[tuple[object, bool]], member: str,
        after: list[tuple[object, bool]]) -> None:
    ccp, plain = Ccp(), PlainCcp()
    play(ccp, plain, before)
    # The member closes every position after every event so far, posts no collateral,
    # is settled through its last trade, and its reference data is removed.
    position, _ = plain.book()
    closing: list[object] = [s.Trade(member, j, -q, 100.0, 60.0)
                             for (m, j), q in position.items() if m == member and q != 0]
    apply_hot(ccp, plain, [*closing, s.PostCollateral(member, 0.0, 0.0, 60.0)])
    apply_reference(ccp, plain, s.Settle(member, 61.0))
    apply_reference(ccp, plain, Member(member, None, 0.0, 0.0))
    apply_reference(ccp, plain, s.RemoveMember(member))
    known = len(ccp.members)
    assert_same(ccp.publish(now=0.0)[0], plain_results(plain))

    providers = {r.provider for r in ccp.resources.liquid_resources}
    if member not in providers:
        assert member not in ccp.members and member in ccp.forgotten
        assert len(ccp.members) < known  # others may have gone too
        assert len(ccp.members) == ccp.book.n_members == ccp.stress.n_members
    play(ccp, plain, after)  # it may come back, by a trade, collateral or reference data
    assert_same(ccp.publish(now=0.0)[0], plain_results(plain))
