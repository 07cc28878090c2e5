"""Make the run folders that tests/sweeps/test_legacy_runs.py resumes (issue 25: runs written before the
training loop moved out of runtime/ must load and resume as before).

Run once, with the code of the revision named in tests/sweeps/legacy/README.md:
    python tests/sweeps/legacy/make_fixtures.py tests/sweeps/legacy
It writes tiny stage-1 and stage-3 runs, each stopped after 2 of its 4 steps, plus the sha256
of the encoder that the same runs export when they are not stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

import gensis

TINY_VIT = {
    "model.backbone": "vit_tiny_patch16_224",
    "model.cifar_stem": False,
    "model.backbone_kwargs": {"patch_size": 4, "embed_dim": 32, "depth": 1, "num_heads": 2},
}
STAGE1 = {
    "preset": "digits",
    "data.resolution": 8,
    "augment.global_crop_size": 8,
    "augment.local_crop_size": 4,
    "augment.n_local_crops": 1,
    **TINY_VIT,
    "dino.out_dim": 64,
    "dino.hidden_dim": 64,
    "dino.bottleneck_dim": 32,
    "train.batch_size": 8,
    "train.epochs": 2,
    "train.knn_every": 0,
    "train.progress": False,
    "data.cache_dir": None,
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stopped_and_whole(root: Path, name: str, settings: dict) -> str:
    """``name``: stopped after 2 steps (kept); ``name``-whole: not stopped (only its sha256 is kept)."""
    gensis.pretrain({**settings, "out": str(root / name), "train.max_steps": 2})
    whole = gensis.pretrain({**settings, "out": str(root / f"{name}-whole")})
    digest = _sha(whole.encoder_path)
    shutil.rmtree(root / f"{name}-whole")
    return digest


def main(root: Path) -> None:
    os.chdir(root)  # every path relative: the test resumes a copy of this folder from inside it
    root = Path(".")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(16, 8, 8, 3), dtype=np.uint8)
    np.savez(root / "images.npz", images=images, labels=np.arange(16) % 2)
    data = {"data.path": str(root / "images.npz")}
    expected = {"stage1": _stopped_and_whole(root, "stage1", {**STAGE1, **data})}
    # Stage 3 from a finished stage 1 ("source"), with a bank from a generator conditioned on it.
    gensis.pretrain({**STAGE1, **data, "out": str(root / "source")})
    gen = gensis.train_generator(
        {
            "model.spec": "tiny",
            "train.batch_size": 8,
            "train.epochs": 1,
            "train.progress": False,
            "data.cache_dir": None,
            **data,
            "encoder": str(root / "source"),
            "out": str(root / "generator"),
        }
    )
    gensis.generate(
        {
            "generator": str(gen.generator_path),
            "data_path": data["data.path"],
            "out": str(root / "bank"),
            "views_per_image": 1,
            "interpolations_per_image": 1,
            "steps": 1,
            "progress": False,
            "cache_dir": None,
        }
    )
    shutil.rmtree(root / "generator")  # the bank holds its images; stage 3 does not read the generator
    stage3 = {
        **STAGE1,
        **data,
        "init_from": str(root / "source"),
        "init_full": True,
        "gen.bank": str(root / "bank"),
        "gen.p_gen": 0.5,
        "gen.lambda_dis": 1.0,
    }
    expected["stage3"] = _stopped_and_whole(root, "stage3", stage3)
    for run in ("stage1", "stage3", "source"):
        for junk in ("train.log", "events.out.tfevents"):
            for f in (root / run).glob(f"{junk}*"):
                f.unlink()
    (root / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
