"""A person's review of a duplicates report, turned back into a report (and its journal plan).

A front end shows a search's result (``DupesReport.to_json()``); the reviewer picks, per group, the keeper
and the members to act on. :func:`reviewed_report` rebuilds the report from that review and the search's
own result, refusing anything the search did not put in that group (a path from elsewhere, files of two
groups mixed, the keeper acted on). What the JSON does not carry travels beside it, from
:func:`review_state`: the content hashes the search saw (the plan checks that nothing changed since) and
the files under ``--keep-in`` (never acted on, whatever the review ticks).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lookalike.dupes.actions import DEFAULT_LINK_KIND, plan_for
from lookalike.dupes.finder import DEFAULT_TIER
from lookalike.dupes.report import DupesReport, Group, Member
from lookalike.errors import UsageError
from lookalike.journal import Plan

#: What a reviewed plan does to the members ticked when no action is named: trash them (undoable).
DEFAULT_REVIEW_ACTION = "trash"


def review_state(report: DupesReport) -> dict:
    """What a review of ``report.to_json()`` needs besides it: ``{"hashes": {path: sha256}, "protected":
    [path, ...]}`` (the files under ``--keep-in``, keepers included)."""
    hashes: dict[str, str] = {}
    protected: set[str] = set()
    for g in report.groups:
        hashes[g.keep] = g.keep_sha256
        hashes.update({m.path: m.sha256 for m in g.members})
        protected.update(g.protected)
        if g.keep_protected:
            protected.add(g.keep)
    return {"hashes": {p: h for p, h in hashes.items() if h}, "protected": sorted(protected)}


def reviewed_report(result: Mapping, groups: object, state: Mapping | None = None, tier: str = DEFAULT_TIER
                    ) -> DupesReport:
    """The report of a review: per reviewed group (``{"keep": path, "members": [path, ...]}``) the chosen
    keeper and the members to act on, each of which must belong to that one group of ``result`` (the search's
    ``to_json()``). ``state``: :func:`review_state` of the search. A member that was the search's keeper keeps
    the tier and score of the new keeper (it is to it what the new keeper was to it). UsageError for a review
    that does not fit the search."""
    if not isinstance(groups, list):
        raise UsageError("give 'groups': [{keep, members}] from the review")
    state = state if isinstance(state, Mapping) else {}
    hashes = state.get("hashes") if isinstance(state.get("hashes"), Mapping) else {}
    protected = set(state.get("protected") or ())
    where: dict[str, tuple[int, dict]] = {}  # path -> (its group in the search, what the search said of it)
    for n, g in enumerate(result.get("groups") or []):
        where[g["keep"]] = (n, {"tier": "exact", "score": 1.0, "keeper": True,
                                "sha256": g.get("keep_sha256") or hashes.get(g["keep"])})
        for m in g["members"]:
            where[m["path"]] = (n, {**m, "sha256": m.get("sha256") or hashes.get(m["path"])})
    out = []
    for g in groups:
        if not isinstance(g, dict) or not isinstance(g.get("keep"), str):
            raise UsageError("each group needs 'keep' (a path) and 'members' (paths)")
        members = [str(p) for p in g.get("members") or []]
        ids = {where.get(p, (None,))[0] for p in [g["keep"], *members]}
        if None in ids or len(ids) != 1:
            raise UsageError("a reviewed group may only hold files of one group of the search")
        if g["keep"] in members:
            raise UsageError("the keeper cannot also be a member to act on")
        keep = where[g["keep"]][1]
        picked = []
        for p in members:
            m = where[p][1]
            rel = keep if m.get("keeper") and not keep.get("keeper") else m
            picked.append(Member(p, rel.get("tier", "near"), float(rel.get("score", 1.0)),
                                 sha256=m.get("sha256") or ""))
        if picked:
            out.append(Group(keep=g["keep"], reason="chosen in review", members=picked,
                             keep_sha256=keep.get("sha256") or "", keep_protected=g["keep"] in protected,
                             protected=sorted(p for p in members if p in protected)))
    return DupesReport(tier=tier, groups=out)


def review_plan(result: Mapping, groups: object, action: str = DEFAULT_REVIEW_ACTION, dest: str | Path | None = None,
                state: Mapping | None = None, tier: str = DEFAULT_TIER, link_kind: str = DEFAULT_LINK_KIND) -> Plan:
    """The journal plan of a review (:func:`reviewed_report`), exactly as ``lookalike dupes --action ACTION
    --plan`` builds it (``plan.skipped``: what was left out, with why)."""
    return plan_for(reviewed_report(result, groups, state, tier), action, dest=dest, link_kind=link_kind)
