"""Groups from verified links, without chaining.

Rule: a group is built around its keeper. A picture joins the group when it is linked directly to
the keeper, or to a strict two-thirds majority of the members already in. A chain A-B-C where A and
C do not match therefore never puts A and C together through B alone (unless B is the keeper and
both are copies of it, which is what a group of duplicates of one photo means). Why: the keeper is
what the user keeps, so every removed file must be a copy of it, or so close to most of its group
that the link is not a single weak hop.

Pictures left out of a group start the next group around the best remaining keeper.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

MAJORITY = 2 / 3


def components(n: int, edges: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Connected components (size >= 2) of an undirected graph on nodes 0..n-1."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    comps: dict[int, list[int]] = {}
    for x in range(n):
        comps.setdefault(find(x), []).append(x)
    return [sorted(c) for c in comps.values() if len(c) > 1]


def split_component(
    nodes: list[int],
    linked: Callable[[int, int], bool],
    pick_keeper: Callable[[list[int]], int],
    check_keeper: Callable[[int, int], bool] | None = None,
    check_all: Callable[[int, list[int]], set[int]] | None = None,
) -> list[tuple[int, list[int]]]:
    """Split one connected component into (keeper, members) groups under the keeper/majority rule.

    ``linked(a, b)``: a known verified link. ``check_keeper(keeper, x)``: may also verify the pair on
    demand (links to the keeper are worth a check; majority votes use known links only). ``check_all(keeper,
    xs)``: the same for many pictures at once (the subset of ``xs`` linked to the keeper), so that the checks
    can run in parallel; when given it replaces ``check_keeper``."""
    check_keeper = check_keeper or linked
    remaining = list(nodes)
    groups: list[tuple[int, list[int]]] = []
    while len(remaining) > 1:
        keeper = pick_keeper(remaining)
        group = [keeper]
        rest = []
        others = [x for x in remaining if x != keeper]
        hits = check_all(keeper, others) if check_all else {x for x in others if check_keeper(keeper, x)}
        for x in others:
            (group if x in hits else rest).append(x)
        grew = True
        while grew and rest:
            grew = False
            for x in list(rest):
                hits = sum(1 for g in group if linked(g, x))
                if hits > MAJORITY * len(group):
                    group.append(x)
                    rest.remove(x)
                    grew = True
        if len(group) > 1:
            groups.append((keeper, group[1:]))
        remaining = rest
    return groups
