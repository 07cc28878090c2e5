"""The benchmarks' tables over seeds: the Student-t interval in the paired table, per-seed McNemar,
and seeds from another machine merged only for an identical recipe on identical pixels."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from _gensis_table import markdown, seed_mcnemar, summarize  # noqa: E402
from gensis_scratch import compute_fair_epochs, merge, recipe_digest  # noqa: E402


def _row(knn: float) -> dict:
    return {"knn_top1": {"20": knn}}


def test_the_paired_table_gives_the_t_interval_and_says_what_few_seeds_cannot_show() -> None:
    rows = {
        "dino": _row(70.0),
        "dino-s1": _row(71.0),
        "dino-s2": _row(70.5),
        "gen-dino": _row(70.5),
        "gen-dino-s1": _row(71.6),
        "gen-dino-s2": _row(70.8),
    }
    s = summarize(rows, [("gen-dino", "dino")], n_test=3000)
    d = s["differences"]["gen-dino - dino"]["knn_k20"]
    # +0.5, +0.6, +0.3: mean 0.4667, sd 0.1528, t(0.975, 2) = 4.3027 -> half-width 0.3795
    assert d["ci95"] == [round(0.46667 - 0.37953, 3), round(0.46667 + 0.37953, 3)] and d["decided"]
    assert d["p_signflip"] == 0.25
    md = markdown(s, {})
    assert "+0.09 to +0.85" in md and "smallest possible p is 0.25" in md


def test_seed_mcnemar_pairs_each_seed_on_the_same_images(tmp_path: Path) -> None:
    def ev(name: str, knn: str, lin: str) -> None:
        (tmp_path / f"{name}.json").write_text(json.dumps({"knn_correct": {"20": knn}, "linear": {"correct": lin}}))

    ev("gen-dino", "111111", "1100"), ev("dino", "000000", "1100")
    ev("gen-dino-s1", "1010", "1"), ev("dino-s1", "0101", "0")
    tests = seed_mcnemar(tmp_path, ["gen-dino", "dino", "gen-dino-s1", "dino-s1"], [("gen-dino", "dino")])
    by = {(t["seed"], t["figure"]): t for t in tests["gen-dino - dino"]}
    assert by[(0, "kNN k=20")]["p_value"] == pytest.approx(2 / 64) and by[(0, "kNN k=20")]["only_a"] == 6  # 6 against 0
    assert by[(0, "linear")]["p_value"] == 1.0 and by[(1, "kNN k=20")]["only_b"] == 2


def _result(seeds: list[int], recipe: str = "r", data: str = "d") -> dict:
    return {
        "seeds": seeds,
        "recipe_sha256": recipe,
        "data_sha256": data,
        "results": {
            "dino": _row(70.0),
            "gen-dino": _row(71.0),
            f"dino-s{seeds[1]}": _row(69.0),
            f"gen-dino-s{seeds[1]}": _row(69.5),
        },
        "summary": {
            "mcnemar": {
                "gen-dino - dino": [
                    {"seed": 0, "figure": "kNN k=20", "p_value": 0.5},
                    {"seed": seeds[1], "figure": "kNN k=20", "p_value": 0.4},
                ]
            }
        },
    }


def test_merge_takes_another_machines_seeds_only_for_the_same_recipe_and_pixels(tmp_path: Path) -> None:
    other = tmp_path / "gpu.jsonl"
    other.write_text(json.dumps(_result([100, 101])) + "\n")
    rows, tests = merge(_result([0, 1]), other)
    assert sorted(rows) == [
        "dino-s0",
        "dino-s1",
        "dino-s100",
        "dino-s101",
        "gen-dino-s0",
        "gen-dino-s1",
        "gen-dino-s100",
        "gen-dino-s101",
    ]
    assert [t["seed"] for t in tests["gen-dino - dino"]] == [0, 1, 100, 101]
    for bad, word in (
        (_result([100, 101], recipe="x"), "recipe"),
        (_result([100, 101], data="x"), "data"),
        (_result([1, 101]), "seeds"),
    ):
        other.write_text(json.dumps(bad) + "\n")
        with pytest.raises(SystemExit, match=word):
            merge(_result([0, 1]), other)


def test_the_recipe_leaves_out_where_it_ran() -> None:
    a = {"out": "x", "device": "cpu", "data.path": "a.zip", "pretrain": {"train.epochs": 120}}
    assert recipe_digest(a) == recipe_digest({**a, "out": "y", "device": "cuda", "data.path": "b.npz"})
    assert recipe_digest(a) != recipe_digest({**a, "pretrain": {"train.epochs": 60}})


def test_the_mutation_score_leaves_out_only_equivalents_that_still_survive() -> None:
    """mutmut renumbers a function's mutants when its code changes: an entry of the equivalents list
    that now names a killed mutant (or none) is stale, is not taken out of the score, and is reported."""
    from mutation_score import stale, table

    status = {
        "gensis.a.x_f__mutmut_1": "killed",
        "gensis.a.x_f__mutmut_2": "survived",
        "gensis.a.x_f__mutmut_3": "survived",
        "gensis.a.x_f__mutmut_4": "killed",
    }
    equivalent = {"gensis.a.x_f__mutmut_2": "why", "gensis.a.x_f__mutmut_4": "stale", "gensis.a.x_f__mutmut_9": "gone"}
    md, score = table(status, equivalent)
    assert "| gensis.a | 4 | 1 | 2 | 1 | 0 | 66.7 % |" in md  # 2 killed of 4 - 1 equivalent
    assert score == pytest.approx(200 / 3)
    assert stale(status, equivalent) == ["gensis.a.x_f__mutmut_4", "gensis.a.x_f__mutmut_9"]


def test_an_equivalent_listed_twice_is_refused_naming_the_line(tmp_path) -> None:
    """Two reasons for one mutant: the second would silently replace the first (three did, unseen)."""
    from mutation_score import read_equivalent_lines

    listed = tmp_path / "equivalent.tsv"
    listed.write_text("# header\ngensis.a.x_f__mutmut_2\twhy\tline\ngensis.a.x_f__mutmut_2\tagain\tline\n")
    with pytest.raises(
        SystemExit, match=rf"^mutation_score.py: {re.escape(str(listed))}:3: gensis.a.x_f__mutmut_2 is listed twice$"
    ):
        read_equivalent_lines(listed)
    listed.write_text("gensis.a.x_f__mutmut_2\twhy\tline\n")
    assert read_equivalent_lines(listed) == {"gensis.a.x_f__mutmut_2": ("why", "line")}
    kept = Path(__file__).resolve().parents[2] / "benchmarks" / "mutation_equivalent.tsv"
    assert read_equivalent_lines(kept)  # the kept list reads


def test_the_mutation_record_brings_back_every_verdict_and_hash_into_a_fresh_mutants_folder(tmp_path) -> None:
    """A mutation run outlives its machine: the verdicts kept in the repository come back as the
    .meta files mutmut reads, for every file that has none yet, and a file that has one is left alone."""
    from mutation_record import restore, save

    old = tmp_path / "old" / "mutants"
    meta = {
        "exit_code_by_key": {"gensis.a.x_f__mutmut_1": 1, "gensis.a.x_f__mutmut_2": 0, "gensis.a.x_f__mutmut_3": None},
        "hash_by_function_name": {"x_f": "abc123"},
        "type_check_error_by_key": {},
        "durations_by_key": {"gensis.a.x_f__mutmut_1": 0.4},
        "estimated_durations_by_key": {},
    }
    (old / "src" / "gensis").mkdir(parents=True)
    (old / "src" / "gensis" / "a.py.meta").write_text(json.dumps(meta))
    record = tmp_path / "record.json"
    assert save(old, record) == 2  # two verdicts; mutant 3 was never run

    new = tmp_path / "new" / "mutants"
    assert restore(new, record) == 2
    back = json.loads((new / "src" / "gensis" / "a.py.meta").read_text())
    assert back["exit_code_by_key"] == meta["exit_code_by_key"]
    assert back["hash_by_function_name"] == {"x_f": "abc123"}
    assert restore(new, record) == 0  # already there: not overwritten
    record.write_text('{"files": {"src/gensis/a.py": {"exit_code_by_key": {}}}}')  # no hashes
    with pytest.raises(SystemExit, match="is not a record of mutmut verdicts"):
        restore(tmp_path / "other", record)


def test_a_renumbered_equivalent_follows_its_line_within_its_function_only() -> None:
    """An edit above a listed mutant renumbers it: the entry moves to the one survivor of the same
    function that writes the same line, and to no other (another function, a killed one, two alike)."""
    from mutation_score import rebind

    status = {
        "gensis.a.x_f__mutmut_3": "killed",  # was the listed one, now another mutation
        "gensis.a.x_f__mutmut_5": "survived",  # the listed mutation, renumbered
        "gensis.a.x_f__mutmut_6": "survived",
        "gensis.a.x_g__mutmut_3": "survived",  # the same line in another function
    }
    lines = {"gensis.a.x_f__mutmut_5": "y = 1", "gensis.a.x_f__mutmut_6": "y = 2", "gensis.a.x_g__mutmut_3": "y = 1"}
    listed = {"gensis.a.x_f__mutmut_3": ("why", "y = 1"), "gensis.a.x_f__mutmut_9": ("gone", "")}
    assert rebind(status, listed, show=lines.get) == {"gensis.a.x_f__mutmut_5": "why", "gensis.a.x_f__mutmut_9": "gone"}
    twins = {**lines, "gensis.a.x_f__mutmut_6": "y = 1"}  # two candidates: ambiguous, left as it was
    assert rebind(status, listed, show=twins.get) == {"gensis.a.x_f__mutmut_3": "why", "gensis.a.x_f__mutmut_9": "gone"}


def test_the_compute_fair_run_is_given_the_pipelines_seconds_beyond_stage_1_not_stage_1_again() -> None:
    # The converged comparison's seed 0 (issue 37): stage 1 6,295.5 s for 240 epochs; the generator,
    # the bank and Gen-DINO 16,767.6 s. init_full starts the run's step fresh, so its epochs are all
    # extra: stage 1 + them is Gen-DINO's whole pipeline (to half an epoch), not 240 epochs more.
    secs = {"dino": 6295.5, "generator": 3478.6, "bank": 1050.6, "gen-dino": 12238.4}
    epochs = compute_fair_epochs(secs, 240)
    assert epochs == 639
    per_epoch = secs["dino"] / 240
    pipeline = secs["dino"] + secs["generator"] + secs["bank"] + secs["gen-dino"]
    assert abs(secs["dino"] + epochs * per_epoch - pipeline) <= per_epoch / 2
    assert compute_fair_epochs({"dino": 100.0, "generator": 1.0, "bank": 0.0, "gen-dino": 0.0}, 10) == 1
