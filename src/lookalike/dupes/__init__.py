"""Duplicate finder: exact, pixel-identical and edited copies (near), or same scene (similar).

    >>> from lookalike.dupes import find_duplicates
    >>> report = find_duplicates(["~/Pictures"], tier="near")
    >>> report.to_json()["groups"][0]["keep"]

Stages: exact (sha256) and pixel (sha256 of decoded pixels) classes; all-against-all candidates from
CNN nearest neighbours and a flip/rotation-invariant pHash; ORB + RANSAC + aligned correlation to
verify each candidate; groups around a keeper without chaining; keeper chosen by an ordered policy.
"""

from lookalike.dupes.actions import (
    ACTIONS,
    DEFAULT_LINK_KIND,
    DEST_ACTIONS,
    KEEPER_PREFIX,
    ActionReport,
    act_on,
    plan_for,
)
from lookalike.dupes.finder import DEFAULT_TIER, NEAR_MIN_NCC, SIMILAR_MIN_COS, find_duplicates
from lookalike.dupes.keeper import CRITERIA, DEFAULT_POLICY, choose_keeper, parse_policy
from lookalike.dupes.report import TIERS, Alias, DupesFailure, DupesReport, Group, Member
from lookalike.dupes.review import DEFAULT_REVIEW_ACTION, review_plan, review_state, reviewed_report

__all__ = [
    "ACTIONS",
    "ActionReport",
    "CRITERIA",
    "DEFAULT_LINK_KIND",
    "DEFAULT_POLICY",
    "DEFAULT_REVIEW_ACTION",
    "DEFAULT_TIER",
    "DEST_ACTIONS",
    "TIERS",
    "Alias",
    "DupesFailure",
    "DupesReport",
    "Group",
    "KEEPER_PREFIX",
    "Member",
    "NEAR_MIN_NCC",
    "SIMILAR_MIN_COS",
    "act_on",
    "choose_keeper",
    "find_duplicates",
    "parse_policy",
    "plan_for",
    "review_plan",
    "review_state",
    "reviewed_report",
]
