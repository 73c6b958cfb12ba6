"""Journal routes (need --allow-changes): apply a journal plan, undo a run. Every path a plan or a
journal names must lie under a root."""

from __future__ import annotations

from fastapi import Request

from lookalike.config import journal_dir
from lookalike.errors import UsageError
from lookalike.service.errors import ApiError
from lookalike.service.requests import read_json
from lookalike.service.routes import Routes
from lookalike.service.security import confine_target
from lookalike.service.state import in_thread, state_of

routes = Routes(tags=["changes"])

#: The fields of a plan's operation (and of a journal's record) that name files.
PATH_FIELDS = ("src", "dst", "path", "target", "keep")


@routes.post("/v1/plans/apply")
async def apply(request: Request):
    """Apply a journal plan (needs --allow-changes). Every path in it must lie under a root."""
    st = state_of(request)
    st.require_changes()
    body = await read_json(request)
    return await in_thread(apply_confined, body, st.cfg.roots)


@routes.post("/v1/undo")
async def undo(request: Request):
    """Undo a journal (without ``journal``: the newest run not yet undone); needs --allow-changes."""
    st = state_of(request)
    st.require_changes()
    body = await read_json(request, optional=True)
    return await in_thread(undo_confined, body.get("journal"), st.cfg.roots)


def apply_confined(body: dict, roots: list[str]) -> dict:
    """Apply the body's ``plan`` (or only check it, ``dry_run``) when every path in it lies under a root."""
    from lookalike import journal

    raw = body.get("plan")
    if not isinstance(raw, dict | list):
        raise ApiError(400, "bad_plan", "give 'plan': a plan as `lookalike dupes --plan` writes it")
    plan = journal.Plan.from_json(raw)
    if not len(plan):
        raise ApiError(400, "bad_plan", "the plan has no operations")
    for op in plan:  # sources, destinations, link targets, keepers
        for name in PATH_FIELDS:
            value = getattr(op, name, None)
            if value:
                confine_target(str(value), roots)
    dry_run = bool(body.get("dry_run", False))
    return journal.apply_plan(plan, dry_run=dry_run).to_json()


def undo_confined(which: str | None, roots: list[str]) -> dict:
    """Undo a journal by id (the name of its folder), or the latest one; only journals whose every
    path lies under the served roots."""
    from lookalike import journal

    if which is not None:
        which = str(which)
        if not which or "/" in which or "\\" in which or which.startswith("."):
            raise ApiError(400, "bad_journal", "give the journal's id (as apply returned it), not a path")
        target = journal_dir() / which
        if not target.is_dir():
            raise ApiError(404, "no_such_journal", f"no journal {which}")
    else:
        try:  # the one rule for "the latest": the newest run not yet undone (as `lookalike undo`)
            target = journal.latest_to_undo().folder
        except UsageError as exc:
            raise ApiError(404, "no_such_journal", str(exc)) from None
    ops = journal.show_journal(str(target))
    for rec in ops.get("operations", []) if isinstance(ops, dict) else []:
        for name in PATH_FIELDS:
            if rec.get(name):
                confine_target(str(rec[name]), roots)
    return journal.undo(target).to_json()
