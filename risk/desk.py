"""The stress-testing desk's figures that need only group totals.

Everything here reads the (groups x scenarios) matrices of a :class:`risk.results.Results`
(``E[g,s]``, credit exposure, and ``D[g,s]``, liquidity drain; rows are groups sorted by
id) and a few amounts passed in as plain arguments; nothing is stored or mutated.

- **Concentration** in the scenario that binds cover-2: ``T = sum_g E[g,s*]``,
  ``top2_share = cover2 / T`` and ``hhi = sum_g (E[g,s*] / T)^2``.
- **Defaults to exhaustion**: the fewest groups whose default in one scenario takes more
  than the prefunded resources.
- **Waterfall**: how a loss over the defaulters' own margin is absorbed by the default
  fund contributions of the defaulters, the CCP's skin in the game, the survivors'
  contributions and other prefunded resources, and what is left uncovered.
- **What-if**: the waterfall and the liquidity drain if a given set of groups
  defaulted now, each in its worst scenario for that set.

Ties follow the house rule: among equal amounts the group or scenario whose id sorts
first wins. :mod:`risk.plain` holds loop-based versions of every function here, and
the property tests hold the two equal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from risk.cover import first_max, ranked
from risk.model import FloatArray, Member
from risk.results import Results

DEFAULTERS_DEFAULT_FUND = "defaulters_default_fund"
SKIN_IN_THE_GAME = "skin_in_the_game"
SURVIVORS_DEFAULT_FUND = "survivors_default_fund"
OTHER_PREFUNDED = "other_prefunded"
UNCOVERED = "uncovered"
# The order in which the layers absorb a loss.
LAYERS = (DEFAULTERS_DEFAULT_FUND, SKIN_IN_THE_GAME, SURVIVORS_DEFAULT_FUND, OTHER_PREFUNDED,
          UNCOVERED)


class UnknownGroupError(ValueError):
    """A group id that is not among the results' groups."""

    def __init__(self, group: str) -> None:
        super().__init__(f"unknown group {group!r}")
        self.group = group


@dataclass(frozen=True)
class Concentration:
    """How concentrated the binding scenario's exposure (or drain) is.

    Attributes
    ----------
    total : ``T = sum_g E[g,s*]`` over every group; 0 when there is no binding scenario
    top2_share : ``cover2 / T``; None when ``T = 0``
    hhi : Herfindahl-Hirschman index ``sum_g (E[g,s*] / T)^2``, in (0, 1]; None when ``T = 0``
    """

    total: float
    top2_share: float | None
    hhi: float | None


@dataclass(frozen=True)
class DefaultsToExhaustion:
    """The fewest group defaults in one scenario that exhaust the prefunded resources.

    Attributes
    ----------
    groups : ``N``, how many groups must default
    scenario : the scenario that attains ``N`` (the larger loss, then the id sorting first)
    loss : the sum of those ``N`` groups' exposures in it, more than the prefunded resources
    defaulters : the ``N`` groups, largest first (among equals the id sorting first)
    """

    groups: int
    scenario: str
    loss: float
    defaulters: tuple[str, ...]


@dataclass(frozen=True)
class Layer:
    """One layer of the default waterfall.

    Attributes
    ----------
    layer : one of :data:`LAYERS`
    size : what the layer can absorb; None for ``uncovered``, which has no limit
    used : what it absorbs, ``min(what is left, size)``
    """

    layer: str
    size: float | None
    used: float


@dataclass(frozen=True)
class WhatIf:
    """The credit waterfall and the liquidity drain if ``groups`` defaulted now.

    Attributes
    ----------
    groups : the defaulting groups, sorted, each once
    credit_scenario : the scenario with the largest ``X``; None without scenarios
    loss_over_margin : ``X = sum_{g in groups} E[g, credit_scenario]``
    waterfall : the layers that absorb ``X``, in :data:`LAYERS` order
    liquidity_scenario : the scenario with the largest drain; None without scenarios
    drain : ``sum_{g in groups} D[g, liquidity_scenario]``
    qualifying : qualifying liquid resources ``Q``
    liquidity_headroom : ``Q - drain``
    """

    groups: tuple[str, ...]
    credit_scenario: str | None
    loss_over_margin: float
    waterfall: tuple[Layer, ...]
    liquidity_scenario: str | None
    drain: float
    qualifying: float
    liquidity_headroom: float

    @property
    def uncovered(self) -> float:
        """What the prefunded resources leave uncovered."""
        return self.waterfall[-1].used


# -- concentration ---------------------------------------------------------------------


def concentration(by_group_scenario: FloatArray, scenarios: Sequence[str],
                  binding_scenario: str | None, cover2: float) -> Concentration:
    """Concentration of the binding scenario: total, top-2 share and HHI.

    Parameters
    ----------
    by_group_scenario : (n_groups, n_scenarios) non-negative exposure ``E`` or drain ``D``
    scenarios : (n_scenarios,) ids of the columns
    binding_scenario : ``s*``, the scenario that binds cover-2; None when there is none
    cover2 : the cover-2 figure in ``s*``

    Returns
    -------
    ``T = sum_g E[g,s*]``, ``top2_share = cover2 / T``, ``hhi = sum_g (E[g,s*] / T)^2``;
    both ratios None when ``T = 0`` or there is no binding scenario.

    Raises
    ------
    ValueError
        ``binding_scenario`` is not among ``scenarios``.
    """
    if binding_scenario is None:
        return Concentration(0.0, None, None)
    column = by_group_scenario[:, _scenario_index(scenarios, binding_scenario)]
    total = float(column.sum())
    if total == 0.0:
        return Concentration(total, None, None)
    shares = column / total
    return Concentration(total, cover2 / total, float(shares @ shares))


def credit_concentration(results: Results) -> Concentration:
    """:func:`concentration` of the credit exposure in the scenario binding credit cover-2."""
    return concentration(results.exposure_by_group_scenario, results.scenarios,
                         results.credit.cover.scenario, results.credit.cover2)


def liquidity_concentration(results: Results) -> Concentration:
    """:func:`concentration` of the liquidity drain in the scenario binding liquidity cover-2."""
    return concentration(results.drain_by_group_scenario, results.scenarios,
                         results.liquidity.cover.scenario, results.liquidity.cover2)


def _scenario_index(scenarios: Sequence[str], scenario: str) -> int:
    try:
        return list(scenarios).index(scenario)
    except ValueError:
        raise ValueError(f"unknown scenario {scenario!r}") from None


# -- defaults to exhaustion ------------------------------------------------------------


def defaults_to_exhaustion(by_group_scenario: FloatArray, groups: Sequence[str],
                           scenarios: Sequence[str],
                           prefunded: float) -> DefaultsToExhaustion | None:
    """The fewest groups whose default in one scenario exhausts the prefunded resources.

    For each scenario ``s``, ``N_s`` is the smallest ``n >= 1`` such that the ``n`` largest
    ``E[g,s]`` sum to *more* than ``prefunded`` (a sum equal to it does not exhaust it);
    ``N = min_s N_s``. Among scenarios attaining ``N`` the larger sum of those ``n`` groups
    wins, then the scenario id sorting first.

    Each column is sorted once (descending) and summed cumulatively; ``N_s`` is the first
    row whose cumulative sum exceeds ``prefunded``: O(groups log groups x scenarios).

    Parameters
    ----------
    by_group_scenario : (n_groups, n_scenarios) credit exposure ``E``
    groups : (n_groups,) ids of the rows, sorted
    scenarios : (n_scenarios,) ids of the columns
    prefunded : prefunded resources ``P``

    Returns
    -------
    None when no scenario's exposures exceed ``P`` even with every group in default
    (also when there are no groups or no scenarios).
    """
    _check_shape(by_group_scenario, groups, scenarios)
    if not len(groups) or not len(scenarios):
        return None
    # Descending per column; cumsum adds in that order, largest first.
    cumulative = np.cumsum(np.sort(by_group_scenario, axis=0)[::-1], axis=0)
    exceeds = cumulative > prefunded
    exhausted = exceeds.any(axis=0)
    if not exhausted.any():
        return None
    needed = np.where(exhausted, exceeds.argmax(axis=0) + 1, len(groups) + 1)
    n = int(needed.min())
    loss = np.where(needed == n, cumulative[n - 1], -np.inf)
    s = first_max(loss, scenarios)
    defaulters = ranked(by_group_scenario[:, s], n)
    return DefaultsToExhaustion(n, scenarios[s], float(loss[s]),
                                tuple(groups[int(g)] for g in defaulters))


def credit_defaults_to_exhaustion(results: Results) -> DefaultsToExhaustion | None:
    """:func:`defaults_to_exhaustion` of the credit exposure against the prefunded resources."""
    return defaults_to_exhaustion(results.exposure_by_group_scenario, results.groups,
                                  results.scenarios, results.credit.prefunded)


def _check_shape(by_group_scenario: FloatArray, groups: Sequence[str],
                 scenarios: Sequence[str]) -> None:
    if by_group_scenario.shape != (len(groups), len(scenarios)):
        raise ValueError(f"matrix of shape {by_group_scenario.shape} for {len(groups)} groups "
                         f"and {len(scenarios)} scenarios")


# -- waterfall -------------------------------------------------------------------------


def waterfall(loss_over_margin: float, defaulters_default_fund: float,
              skin_in_the_game: float, survivors_default_fund: float,
              other_prefunded: float) -> tuple[Layer, ...]:
    """The layers that absorb the defaulters' loss beyond their own margin.

    With ``left = X`` to begin with, each layer in :data:`LAYERS` order absorbs
    ``used = min(left, size)`` and leaves ``left - used``; ``uncovered`` takes what is
    left. The layers' ``used`` sum to ``X``.

    Parameters
    ----------
    loss_over_margin : ``X = sum_{g in G} E[g,s]``, the defaulters' loss over their margin
    defaulters_default_fund : the default fund contributions of the defaulting groups
    skin_in_the_game : the CCP's own resources committed before the survivors'
    survivors_default_fund : every other member's contribution
    other_prefunded : any other prefunded resources

    Returns
    -------
    Five :class:`Layer`, in :data:`LAYERS` order.

    Raises
    ------
    ValueError
        An amount is negative.
    """
    sizes = (defaulters_default_fund, skin_in_the_game, survivors_default_fund,
             other_prefunded)
    for name, amount in zip(("loss_over_margin", *LAYERS[:-1]), (loss_over_margin, *sizes),
                            strict=True):
        if not amount >= 0.0:  # NaN too
            raise ValueError(f"{name} must not be negative: {amount}")
    left, layers = float(loss_over_margin), []
    for name, size in zip(LAYERS[:-1], sizes, strict=True):
        used = min(left, float(size))
        layers.append(Layer(name, float(size), used))
        left -= used
    layers.append(Layer(UNCOVERED, None, left))
    return tuple(layers)


def default_fund_by_group(members: Iterable[Member]) -> dict[str, float]:
    """Each group's default fund contributions: the sum over its members."""
    out: dict[str, float] = defaultdict(float)
    for m in members:
        out[m.group_id] += m.default_fund
    return dict(out)


def _defaulters_waterfall(groups: Iterable[str], loss_over_margin: float,
                          default_fund_by_group: Mapping[str, float],
                          skin_in_the_game: float, other_prefunded: float,
                          total_default_fund: float) -> tuple[Layer, ...]:
    defaulters = float(sum(default_fund_by_group.get(g, 0.0) for g in groups))
    # Floored at 0: when every group defaults, the two sums may differ by rounding.
    survivors = max(0.0, total_default_fund - defaulters)
    return waterfall(loss_over_margin, defaulters, skin_in_the_game, survivors,
                     other_prefunded)


def cover2_waterfall(results: Results, default_fund_by_group: Mapping[str, float],
                     skin_in_the_game: float, other_prefunded: float,
                     total_default_fund: float) -> tuple[Layer, ...]:
    """:func:`waterfall` for the two groups that bind credit cover-2, in their scenario.

    ``X`` is the cover-2 figure; with ``total_default_fund``, ``skin_in_the_game`` and
    ``other_prefunded`` those of the results (``results.credit.default_fund`` and the
    resources), ``uncovered == max(0, -results.credit.headroom)``.

    Parameters
    ----------
    results : the published results
    default_fund_by_group : each group's default fund contributions (missing: 0), as
        :func:`default_fund_by_group` gives them
    skin_in_the_game, other_prefunded : the CCP's prefunded resources beyond the fund
    total_default_fund : every member's contribution, the defaulters' included
    """
    cover = results.credit.cover
    top = [t.group for t in cover.top]
    if cover.scenario is None:
        loss = 0.0
    else:
        s = results.scenarios.index(cover.scenario)
        rows = [results.groups.index(g) for g in top]
        loss = float(results.exposure_by_group_scenario[rows, s].sum())
    return _defaulters_waterfall(top, loss, default_fund_by_group, skin_in_the_game,
                                 other_prefunded, total_default_fund)


# -- what-if ---------------------------------------------------------------------------


def what_if(results: Results, groups: Iterable[str],
            default_fund_by_group: Mapping[str, float], skin_in_the_game: float,
            other_prefunded: float, total_default_fund: float) -> WhatIf:
    """The waterfall and the liquidity drain if ``groups`` defaulted now.

    Credit: ``X_s = sum_{g in G} E[g,s]``; the scenario with the largest ``X_s`` (among
    equals the id sorting first) and the :func:`waterfall` of that ``X`` with
    defaulters' contributions ``sum_{g in G} DF[g]`` and survivors' contributions
    ``total_default_fund - sum_{g in G} DF[g]``. Liquidity: the scenario with the largest
    ``sum_{g in G} D[g,s]`` (ties likewise), that drain, ``Q`` and ``Q - drain``.

    Parameters
    ----------
    results : the published results
    groups : the defaulting group ids; repeats count once, an empty set is allowed (``X = 0``)
    default_fund_by_group : each group's default fund contributions (missing: 0)
    skin_in_the_game, other_prefunded : the CCP's prefunded resources beyond the fund
    total_default_fund : every member's contribution, the defaulters' included

    Raises
    ------
    UnknownGroupError
        A group is not among ``results.groups``.
    """
    defaulters = tuple(sorted(set(groups)))
    index = {g: i for i, g in enumerate(results.groups)}
    for g in defaulters:
        if g not in index:
            raise UnknownGroupError(g)
    rows = [index[g] for g in defaulters]
    credit_scenario, loss = _worst_scenario(results.exposure_by_group_scenario, rows,
                                            results.scenarios)
    liquidity_scenario, drain = _worst_scenario(results.drain_by_group_scenario, rows,
                                                results.scenarios)
    qualifying = results.liquidity.qualifying
    return WhatIf(
        groups=defaulters, credit_scenario=credit_scenario, loss_over_margin=loss,
        waterfall=_defaulters_waterfall(defaulters, loss, default_fund_by_group,
                                        skin_in_the_game, other_prefunded,
                                        total_default_fund),
        liquidity_scenario=liquidity_scenario, drain=drain, qualifying=qualifying,
        liquidity_headroom=qualifying - drain)


def _worst_scenario(by_group_scenario: FloatArray, rows: list[int],
                    scenarios: Sequence[str]) -> tuple[str | None, float]:
    """The scenario with the largest sum over ``rows`` (ties: id order), and that sum."""
    if not len(scenarios):
        return None, 0.0
    sums = by_group_scenario[rows].sum(axis=0)
    s = first_max(sums, scenarios)
    return scenarios[s], float(sums[s])


# -- the desk of the published results --------------------------------------------------


@dataclass(frozen=True)
class StressDesk:
    """The figures supervisors ask for beside cover-2, for one set of results.

    Attributes
    ----------
    credit_concentration, liquidity_concentration : in each side's binding scenario
    defaults_to_exhaustion : the fewest largest groups whose default exhausts the
        prefunded resources, or None
    waterfall : what the cover-2 pair's default uses of each layer
    """

    credit_concentration: Concentration
    liquidity_concentration: Concentration
    defaults_to_exhaustion: DefaultsToExhaustion | None
    waterfall: tuple[Layer, ...]


def stress_desk(results: Results) -> StressDesk:
    """Concentration, defaults to exhaustion and the cover-2 waterfall of ``results``."""
    credit = results.credit
    return StressDesk(
        credit_concentration(results), liquidity_concentration(results),
        credit_defaults_to_exhaustion(results),
        cover2_waterfall(results, credit.default_fund_by_group, credit.skin_in_the_game,
                         credit.other_prefunded, credit.default_fund))


def what_if_now(results: Results, groups: Iterable[str]) -> WhatIf:
    """:func:`what_if` with the resources the results were computed with."""
    credit = results.credit
    return what_if(results, groups, credit.default_fund_by_group, credit.skin_in_the_game,
                   credit.other_prefunded, credit.default_fund)
