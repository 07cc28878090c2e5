"""Per-class accuracy from an evaluation's per-image correctness (benchmarks/per_class.py, issue 37)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from per_class import class_accuracy  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "per_class.py"


def test_each_class_gets_the_share_of_its_own_images_marked_right() -> None:
    # class 0: images 0, 2, 3 (right, wrong, right) -> 66.67 %; class 1: images 1, 4 (right, right) -> 100 %
    assert class_accuracy("11011", [0, 1, 0, 0, 1]) == {0: 66.67, 1: 100.0}
    assert class_accuracy("000", [2, 2, 5]) == {2: 0.0, 5: 0.0}


def test_marks_that_do_not_match_the_test_images_are_refused() -> None:
    with pytest.raises(ValueError, match="4 correctness marks for 3 test images"):
        class_accuracy("1101", [0, 1, 0])


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "pair/eval/dino.json"),  # missing
        ("{not json", "pair/eval/dino.json: not an evaluation's JSON"),
        ('{"knn_correct": {}}', "no per-image kNN k=20 correctness for these test images"),
    ],
)
def test_a_bad_evaluation_file_is_named_in_one_line_without_a_traceback(
    tmp_path: Path, content: str | None, says: str
) -> None:
    test = tmp_path / "test"
    for label in ("0", "1"):
        (test / label).mkdir(parents=True)
        Image.new("RGB", (8, 8), (200, 10, 10)).save(test / label / "a.png")
    (tmp_path / "pair" / "eval").mkdir(parents=True)
    (tmp_path / "pair" / "config.yaml").write_text(f"data:\n  path: {test}\n  eval_path: {test}\n  cache_dir: null\n")
    if content is not None:
        (tmp_path / "pair" / "eval" / "dino.json").write_text(content)
    (tmp_path / "pair" / "eval" / "gen-dino.json").write_text('{"knn_correct": {"20": "11"}}')
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--pipeline", str(tmp_path / "pair"), "--pairs", "dino:gen-dino"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert says in done.stderr and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("per_class: ")
