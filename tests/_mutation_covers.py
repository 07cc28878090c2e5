"""Which tests run under a mutmut mutant, and how long they took (benchmarks/mutation.sh; issue 39).

mutmut runs, for each mutant, every test of the selection that reached the mutated function. For
the modules below, that is the whole training stack: a trained generator fixture (68 s), a trained
autoencoder (11 s) and the resume tests, several minutes for each mutant that survives. There the
run is limited to the test files that cover the module (its unit tests and the loop tests that
exist for its behaviour), as the issue asks. A module not listed keeps every reaching test.
With ``MUTATION_TIMES`` set, each mutant's session time is written down (:func:`time_session`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

_TRAIN = ("tests/train/test_pretrain.py", "tests/train/test_train_generator.py")
_SSL = ("tests/ssl/test_dino.py", "tests/ssl/test_gen_dino.py", "tests/train/test_pretrain.py")
COVERS: dict[str, tuple[str, ...]] = {
    "gensis.runtime.checkpoint": (
        "tests/runtime/test_checkpoint.py",
        "tests/runtime/test_checkpoint_state.py",
        *_TRAIN,
    ),
    "gensis.runtime.schedules": ("tests/ssl/test_dino.py", *_TRAIN),
    "gensis.train.state": ("tests/runtime/test_checkpoint_state.py", "tests/ssl/test_gen_dino.py", *_TRAIN),
    "gensis.ssl.dino": _SSL,
    "gensis.ssl.schedules": _SSL,
    "gensis.ssl.losses.dino_loss": _SSL,
    "gensis.generator.sampling": ("tests/generator/test_conditioning.py", "tests/train/test_train_generator.py"),
    "gensis.generator.target_augment": ("tests/generator/test_conditioning.py", "tests/train/test_train_generator.py"),
    "gensis.generator.conditioning": (
        "tests/generator/test_conditioning.py",
        "tests/generator/test_unconditional_embedding.py",
        "tests/generator/test_generator_follows_condition.py",
        "tests/train/test_train_generator.py",
    ),
    "gensis.data.dataset": (
        "tests/data/test_image_data.py",
        "tests/data/test_data_cache.py",
        "tests/data/test_data_fingerprint.py",
        "tests/train/test_pretrain.py",
    ),
}


def mutant_module(mutant: str) -> str:
    """``gensis.ssl.losses.dino_loss.x_f__mutmut_3`` (a method: ``...xǁCǁf__mutmut_3``) -> its module."""
    return mutant.split("__mutmut_")[0].rsplit(".", 1)[0]


def select_and_order(config: Any, items: list[Any]) -> None:
    """Under a mutant: keep the module's covering files (when listed) and run the cheapest first.

    mutmut runs a mutant's tests with -x, so a mutant that a quick unit test kills no longer waits
    for the resume tests that reach the same function; the times are mutmut's (./mutmut-stats.json).
    A file's tests stay together (files ordered by their quickest test): mutmut's times leave out
    fixture set-up, and a module fixture set up again for each return to its file cost more than the
    order saved."""
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if "__mutmut_" not in mutant:
        return
    covers = COVERS.get(mutant_module(mutant))
    if covers is not None:
        kept = [item for item in items if item.nodeid.split("::")[0] in covers]
        dropped = [item for item in items if item.nodeid.split("::")[0] not in covers]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept
    try:
        seconds = json.loads(Path("mutmut-stats.json").read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return
    cost = {item.nodeid: seconds.get(item.nodeid, 0.0) for item in items}
    quickest: dict[str, float] = {}
    for item in items:
        quickest[str(item.path)] = min(quickest.get(str(item.path), float("inf")), cost[item.nodeid])
    items.sort(key=lambda item: (quickest[str(item.path)], str(item.path), cost[item.nodeid]))


_session_started: list[float] = []


def time_session(finished: bool, exitstatus: int = 0) -> None:
    """With ``MUTATION_TIMES`` set (a file), append one line per mutant: its name, its pytest
    session's start and end (epoch seconds) and exit status.

    mutmut's forkserver isolation records no duration (every ``durations_by_key`` is 0), and a full
    run's time is an issue's figure: benchmarks/mutation_time.py estimates it from these lines.
    Runs without a mutant (mutmut's stats and clean runs, the plain suite) write nothing."""
    mutant, path = os.environ.get("MUTANT_UNDER_TEST", ""), os.environ.get("MUTATION_TIMES")
    if "__mutmut_" not in mutant or not path:
        return
    if not finished:
        _session_started.append(time.time())
    elif _session_started:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{mutant}\t{_session_started[-1]:.3f}\t{time.time():.3f}\t{int(exitstatus)}\n")
