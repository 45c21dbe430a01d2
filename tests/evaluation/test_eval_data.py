"""What the evaluation commands read: a ``--data`` spec that names no usable data is refused at
once with what is wrong, photos without a target are reported rather than dropped, a
multi-instance folder with a photo lacking its alphas does not end the run, and ``limit`` is
exact."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from service.evaluation import samples as samples_module
from service.evaluation.samples import DataError, Skipped, samples
from tests.support.images import two_objects


def write_folder(root: Path, photos: dict[str, list[np.ndarray] | None], *, multi: bool) -> None:
    """A folder of ``image/<name>.png`` with, per photo, its alphas (``None``: no alpha at all;
    ``[]`` in the multi-instance layout: an empty instance folder). ``multi`` writes
    ``alpha/<name>/<k>.png``, else ``alpha/<name>.png`` (one alpha)."""
    image, _, _ = two_objects(96, 128)
    (root / "image").mkdir(parents=True)
    (root / "alpha").mkdir()
    for name, alphas in photos.items():
        cv2.imwrite(str(root / "image" / f"{name}.png"), image[..., ::-1])
        if alphas is None:
            continue
        if multi:
            (root / "alpha" / name).mkdir()
            for k, alpha in enumerate(alphas):
                cv2.imwrite(str(root / "alpha" / name / f"{k}.png"), np.round(alpha * 255).astype(np.uint8))
        else:
            cv2.imwrite(str(root / "alpha" / f"{name}.png"), np.round(alphas[0] * 255).astype(np.uint8))


def people() -> tuple[np.ndarray, np.ndarray]:
    """A soft disc and a square, two people of a 96 x 128 photo."""
    _, target, other = two_objects(96, 128)
    return target, other.astype(np.float32)


def test_a_photo_without_alphas_in_a_multi_instance_folder_is_skipped_and_reported(tmp_path: Path) -> None:
    target, other = people()
    write_folder(
        tmp_path, {"a": [target, other], "no_folder": None, "empty_folder": [], "b": [target]}, multi=True
    )
    skipped: list[Skipped] = []
    found = list(samples(str(tmp_path), max_instances=2, skipped=skipped))
    assert sorted(s.name for s in found) == ["a#0", "a#1", "b#0"]
    assert all(s.error is None for s in found)
    assert sorted((s.name, s.reason) for s in skipped) == [
        ("empty_folder", "no alpha"),
        ("no_folder", "no alpha"),
    ]


def test_a_photo_without_a_target_in_a_single_instance_folder_is_reported(tmp_path: Path) -> None:
    target, _ = people()
    empty = np.zeros_like(target)
    write_folder(tmp_path, {"a": [target], "no_alpha": None, "zero": [empty]}, multi=False)
    skipped: list[Skipped] = []
    found = list(samples(str(tmp_path), skipped=skipped))
    assert [s.name for s in found] == ["a#0"]
    assert [str(s) for s in skipped] == ["no_alpha (no alpha)", "zero (no target of at least 16 px)"]


def test_limit_gives_exactly_that_many_targets() -> None:
    for limit in (-1, 0, 1, 2):
        assert len(list(samples("synthetic:3@96", max_instances=1, limit=limit))) == max(limit, 0), limit


def _a_file(tmp_path: Path) -> str:
    (tmp_path / "file.txt").write_text("not a folder")
    return str(tmp_path / "file.txt")


def _ccp_not_a_clone(tmp_path: Path) -> str:
    (tmp_path / "photos").mkdir()
    return f"ccp-photos:2?root={tmp_path}"


def _folder(tmp_path: Path, query: str = "", table: str | None = None) -> str:
    target, _ = people()
    write_folder(tmp_path / "d", {"a": [target]}, multi=False)
    if table is not None:
        (tmp_path / "d" / "sources.csv").write_text(table)
    return f"{tmp_path / 'd'}{query}"


BAD_SPECS = {
    "no such folder": (lambda tmp: str(tmp / "missing"), "no such folder"),
    "a file": (_a_file, "not a folder"),
    "a folder without image/alpha": (lambda tmp: str(tmp), "no image folder"),
    "synthetic:abc": (lambda tmp: "synthetic:abc", "N must be a whole number"),
    "synthetic:1@abc": (lambda tmp: "synthetic:1@abc", "SIZE must be a whole number"),
    "synthetic:0": (lambda tmp: "synthetic:0", "N must be a whole number of at least 1"),
    "synthetic with a query": (lambda tmp: "synthetic:2?human_content=1", "takes no ?human_content=1"),
    "ccp-photos:abc": (lambda tmp: "ccp-photos:abc", "N must be a whole number"),
    "ccp root missing": (lambda tmp: f"ccp-photos:2?root={tmp / 'missing'}", "no Clothing Co-Parsing clone"),
    "ccp root not a clone": (_ccp_not_a_clone, "not a Clothing Co-Parsing clone"),
    "ccp unknown query": (lambda tmp: "ccp-scenes:2?size=3", "takes only ?root=PATH"),
    "filter without sources.csv": (lambda tmp: _folder(tmp, "?human_content=1"), "sources.csv: no such file"),
    "filter on a missing column": (
        lambda tmp: _folder(tmp, "?nothing=1", "id,human_content\na,1\n"),
        "has no column 'nothing' (columns: id, human_content)",
    ),
    "filter without =": (
        lambda tmp: _folder(tmp, "?human_content", "id,human_content\na,1\n"),
        "use ?column=value",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_a_spec_that_names_no_usable_data_is_refused_at_once(case: str, tmp_path: Path) -> None:
    make, message = BAD_SPECS[case]
    spec = make(tmp_path)
    with pytest.raises(DataError, match=re.escape(message)):
        samples(spec)  # not only when iterated: the commands check before loading any model


def test_the_default_ccp_clone_missing_says_where_it_looked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(samples_module, "CCP_ROOT", tmp_path / "clothing-co-parsing")
    with pytest.raises(DataError) as error:
        samples("ccp-photos:2")
    assert str(tmp_path / "clothing-co-parsing") in str(error.value) and "?root=PATH" in str(error.value)
