"""The journal: every command that changes files (dupes clean-up, sort --rename, cluster --links/--copy, faces
naming) builds a Plan and hands it to ``apply_plan``; ``undo`` reverses it. Nothing a user owns is overwritten
or lost.

Build a plan (each builder records the source's sha256 now, or takes ``sha256=`` when it is already known)::

    from lookalike.journal import Plan, apply_plan, undo, write_plan, load_plan

    plan = Plan(description="dupes --action move")
    plan.move("/photos/a (copy).jpg", "/dupes/group_0001/a (copy).jpg")   # missing folders are created
    plan.copy(src, dst)
    plan.rename("/photos/IMG_1.jpg", "0001_IMG_1.jpg")                      # a new name in the same folder
    plan.trash(dup, keep=keeper)    # OS trash via send2trash; a copy is also kept in the journal (undo uses it)
    plan.delete(dup, keep=keeper)   # the file is moved into the journal folder until `lookalike journal purge`
    plan.link(dup, keeper, kind="hard", replace=True)      # replace a file by a hard/symbolic link (keeper: target)
    plan.link(out / "x.jpg", photo, kind="symbolic", fallback="copy")   # a new link (a copy if links fail)
    plan.unlink(out / "x.jpg")      # remove a symbolic link; its keeper is the photo it points to
    plan.mkdir(folder)

Save it for the user to review or edit, then apply (``lookalike apply FILE`` does the same)::

    write_plan(plan, "plan.json"); plan = load_plan("plan.json")
    report = apply_plan(plan, progress=None)   # ApplyReport: .journal (folder), .done, .failed, .to_json()
    undo(report.journal)                       # or undo(): the newest run not yet undone -> UndoReport (.problems)
    resume()                                   # finish an interrupted run (crash, kill -9)

Guarantees:
- The journal line of an operation (with the sha256 of every file it touches, before and after) is fsynced
  BEFORE the operation starts, and a ``done`` line after; a run killed at any point can be undone or resumed.
- Sources are checked against the plan's sha256; a changed or missing file is refused (listed in
  ``report.failed``) and the run goes on.
- Every operation that removes or replaces a file names its keeper (``keep`` + ``keep_sha256``; builders hash
  it unless given). Right before acting, at apply and at resume, the keeper must exist as a regular file (not a
  symlink), outside lookalike's data folder, with that sha256, and be another file (inode) than the one
  removed; else the operation is refused. Only lookalike's own files (inside its data folder) need no keeper,
  and nothing inside the journals' folder is ever acted on.
- A symbolic link is removed only as a link (``plan.unlink``, a ``delete`` with ``kind="symbolic"``): its keeper
  is the file it points to; the link must still point exactly there and that file pass the check above. Any
  other removal of a symlink pointing at its keeper is refused (a link is not a duplicate of its target).
- Names that are not UTF-8 (surrogate-escaped str) round-trip through plan files and journals.
- A name that is taken is never overwritten: ``name (1).jpg`` is used instead and journaled.
- Undo only deletes or replaces files whose sha256 shows the run made them; what it cannot restore is reported.

Journals live in ``lookalike.config.journal_dir()`` (one folder per run; ``journal_dir=`` overrides). A tree
of links (``cluster --links``, ``faces cluster --links``) is written by ``lookalike.journal.links``. Crashes at
each step point are simulated by the tests alone (tests/crash_points.py replaces ``ops.step_point``).
"""

from lookalike.journal.manage import (
    Created,
    JournalInfo,
    created_files,
    journal_info,
    latest_to_undo,
    list_journals,
    purge,
    show_journal,
)
from lookalike.journal.plan import Op, Plan, load_plan, write_plan
from lookalike.journal.run import ApplyReport, UndoReport, apply_plan, find_interrupted, resume, undo
from lookalike.journal.store import Journal, open_journal

__all__ = [
    "ApplyReport", "Created", "Journal", "JournalInfo", "Op", "Plan", "UndoReport", "apply_plan", "created_files",
    "find_interrupted", "journal_info", "latest_to_undo", "list_journals", "load_plan", "open_journal", "purge",
    "resume", "show_journal", "undo", "write_plan",
]
