"""lookalike.faces.people: group a folder's faces by person, name a group (examples of a face model),
merge two groups, move a wrong face out (also out of the model), and see the names again on regrouping.
Real photos (three people x three) and real dlib models; one catalog for the module."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import shared_data

pytest.importorskip("dlib")

PEOPLE = ["Brad_Pitt", "Tom_Hanks", "Natalie_Portman"]


@pytest.fixture(scope="module")
def album(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("people")
    folder = base / "album"
    folder.mkdir()
    for person in PEOPLE:
        for p in sorted(shared_data("faces", "celebrity", person).glob("*.jpg"))[:3]:
            shutil.copy(p, folder / f"{person}-{p.name}")
    return folder, base / "catalog.sqlite"


def person_of(face) -> str:
    return Path(face.path).name.rsplit("-", 1)[0]


def test_group_name_merge_move_out(album):
    from lookalike.errors import UsageError
    from lookalike.faces import FaceModel, recognize
    from lookalike.faces.people import Face, People, group_people, merge_people, move_face, name_person

    folder, cat = album
    people = group_people(folder, catalog=cat)
    assert people.model is None and people.groups
    # each group is one person (the photos are clear portraits)
    for g in people.groups:
        assert len({person_of(f) for f in g.faces}) == 1, [f.path for f in g.faces]
    assert People.from_json(people.to_json()).to_json() == people.to_json()

    # name the largest group: its faces become examples of that person in a new face model
    first = people.groups[0]
    who = person_of(first.faces[0])
    people, report = name_person(people, first.id, who, "friends", catalog=cat)
    assert report.photos_added == len(first.faces) and people.group(first.id).label == who
    fm = FaceModel.load("friends")
    assert {p.label for p in fm.prototypes} == {who} and len(fm.prototypes) == len(first.faces)
    # renamed: the faces leave the old name (one face is never two people), and come back when named again
    people, report = name_person(people, first.id, "Someone Else", "friends", catalog=cat)
    assert {p.label for p in FaceModel.load("friends").prototypes} == {"Someone Else"}
    people, report = name_person(people, first.id, who, "friends", catalog=cat)
    assert report.photos_added == len(first.faces)
    assert [p.label for p in FaceModel.load("friends").prototypes] == [who] * len(first.faces)

    # merge two groups (whatever they are: the rule is only "never two faces of one photo")
    if len(people.groups) >= 2:
        a, b = people.groups[0], people.groups[1]
        merged = merge_people(people, a.id, b.id)
        assert len(merged.group(a.id).faces) == len(a.faces) + len(b.faces)
        assert b.id not in {g.id for g in merged.groups}
        assert merged.group(a.id).label == who
        with pytest.raises(UsageError):
            merge_people(people, a.id, a.id)

    # move a wrong face out of the named group: it is left alone, and the model forgets it
    wrong = people.group(first.id).faces[-1]
    moved = move_face(people, wrong, model="friends")
    assert wrong in moved.alone
    assert wrong not in moved.group(first.id).faces
    fm = FaceModel.load("friends")
    assert len(fm.prototypes) == len(first.faces) - 1
    assert all(Path(p.source).name != Path(wrong.path).name for p in fm.prototypes)
    assert not any(fm.crop_path(p).name.startswith(Path(wrong.path).stem) for p in fm.prototypes)
    # a face no group holds, a group that does not exist
    with pytest.raises(UsageError):
        move_face(moved, wrong)
    with pytest.raises(UsageError):
        move_face(people, wrong, to="person-999")
    with pytest.raises(UsageError):
        name_person(people, first.id, "unknown", "friends")
    with pytest.raises(UsageError):
        Face.from_json({"path": wrong.path, "box": [5, 5, 1, 1]})

    # grouping again with the model shows the name given before; recognition knows the person
    again = group_people(folder, model="friends", catalog=cat)
    assert again.model == "friends"
    assert [g.label for g in again.groups if any(f.path == first.faces[0].path for f in g.faces)] == [who]
    res = recognize(first.faces[0].path, model="friends", catalog=cat)
    assert res.faces and res.faces[0].label == who


def test_merge_refuses_two_faces_of_one_photo():
    from lookalike.errors import UsageError
    from lookalike.faces.people import Face, People, Person, merge_people, move_face

    people = People([Person("person-001", [Face("/a.jpg", (0, 0, 10, 10)), Face("/b.jpg", (0, 0, 10, 10))]),
                     Person("person-002", [Face("/a.jpg", (50, 50, 60, 60))])])
    with pytest.raises(UsageError, match="never one person"):
        merge_people(people, "person-001", "person-002")
    with pytest.raises(UsageError, match="never one person"):
        move_face(people, Face("/a.jpg", (50, 50, 60, 60)), to="person-001")
    lone = People(people.groups, [Face("/c.jpg", (0, 0, 10, 10))])
    joined = move_face(lone, Face("/c.jpg", (1, 1, 10, 10)), to="person-002")
    assert joined.alone == [] and joined.group("person-002").faces[-1] == Face("/c.jpg", (0, 0, 10, 10))
    with pytest.raises(UsageError, match="on its own already"):
        move_face(lone, Face("/c.jpg", (0, 0, 10, 10)))
    out = move_face(people, Face("/b.jpg", (0, 0, 10, 10)), to="person-002")
    assert [len(g.faces) for g in out.groups] == [1, 2] or [len(g.faces) for g in out.groups] == [2, 1]
    assert out.group("person-002").faces[-1] == Face("/b.jpg", (0, 0, 10, 10))
