"""Gen-DINO against DINO, both trained from scratch for the same epochs: the comparison of the
Gen-SIS paper's headline table (arXiv 2412.01672, Table 1: ViT-S/16, 100 epochs, kNN 69.4 -> 70.9).

One ``gensis run`` with ``stage3_init=scratch`` gives both arms of a seed: stage 1 is DINO from
scratch for N epochs (the DINO arm); the generator is conditioned on that very encoder; Gen-DINO
starts again from a random init, with the same training seed (so the same initial weights and the
same order of images), for the same N epochs. Stage 1 is then the control (the pipeline trains
none, and its report judges Gen-DINO against stage 1). Both arms are paired by seed.

``--bank shared`` (the CPU default) trains the generator and the bank once, on seed 0's stage 1,
and repeats only the two arms' training with seeds 1, 2, ...; the SE then covers the training
seeds, not the generator's. ``--bank per-seed`` runs a whole pipeline per seed, as the paper's
protocol reads (three generators do not fit one 2-hour session on 2 cores).

``dino-compute-fair`` continues seed 0's DINO for as many epochs as the generator, the bank and
Gen-DINO took (measured in this run): Gen-DINO's whole pipeline compute given to DINO.

    python benchmarks/gensis_scratch.py --data pcam --no-compute-fair    # 4k PCam tiles at 32 px, N = 30, 3 seeds:
                                                                         # 1 h 32 min on 2 cores (2026-12-03)
    python benchmarks/gensis_scratch.py --data cifar10 --no-compute-fair # 5k CIFAR-10 images, N = 40, 3 seeds:
                                                                         # 1 h 50 min (2026-12-04)
    python benchmarks/gensis_scratch.py --data pcam --no-compute-fair --dial guidance_scale=2  # and a guidance-2 arm:
                                                                                               # 2 h 15 min (2026-12-05)
    python benchmarks/gensis_scratch.py --data pcam --scale gpu --bank per-seed --device cuda
    bash benchmarks/gpu_scratch.sh      # on a lent device: CIFAR-10 at a 9-minute scale, 3 seeds
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import gensis_cifar10
import gensis_pcam
from _common import emit, header, settings_arg
from _gensis_run import bank_and_loss_notes, epochs_for, evaluate_all, faithfulness_md, logged_seconds, run_folder
from _gensis_table import loss_trend, mcnemar_md, seed_mcnemar, split_name, summarize, write_table

import gensis
from gensis.config.overrides import build_config, flatten
from gensis.config.schema import PipelineConfig, PretrainConfig
from gensis.eval.convergence import convergence
from gensis.pipeline import stage_configs
from gensis.pipeline.stages import stage3_variant
from gensis.runtime.device import resolve_device
from gensis.runtime.run_folder import RunFolder

# Each set's own benchmark settings (the same data, generator and bank), stage 3 from scratch.
DATASETS = {
    "pcam": (gensis_pcam.DATA, "histology", gensis_pcam.SCALES),
    "cifar10": (
        gensis_cifar10.DATA,
        "cifar10",
        {
            **gensis_cifar10.SCALES,
            # benchmarks/gpu_scratch.sh: one H200, the 10k/5k subset of gpu_check.py prepare, in
            # about 9 minutes with 3 seeds (the cifar10 preset: ResNet-18, CIFAR stem; pixel32).
            "device-check": {
                "pretrain": {"train.epochs": 20, "train.knn_every": 0, "train.log_every": 10},
                "generator": {
                    "model.spec": "pixel32",
                    "train.batch_size": 256,
                    "train.epochs": 30,
                    "train.log_every": 20,
                },
                "generate": {"views_per_image": 1, "interpolations_per_image": 1, "steps": 10, "batch_size": 1000},
                "show": {"steps": 10},
                "linear_epochs": 100,
            },
            # GPU_CHECK_DRY=1 bash benchmarks/gpu_scratch.sh: every step of it on the CPU, in minutes.
            "dry": {
                "pretrain": {
                    "model.backbone": "resnet10t",
                    "model.cifar_stem": False,
                    "train.epochs": 1,
                    "train.batch_size": 128,
                    "train.knn_every": 0,
                    "train.log_every": 1,
                },
                "generator": {
                    "model.spec": "tiny",
                    "model.block_out_channels": [32, 64, 64],
                    "train.batch_size": 64,
                    "train.epochs": 2,
                    "train.log_every": 2,
                },
                "generate": {"views_per_image": 1, "interpolations_per_image": 1, "steps": 2},
                "show": {"steps": 2},
                "linear_epochs": 5,
            },
        },
    ),
}
LABELS = {"dino-compute-fair": "DINO, compute-fair (seed 0's DINO continued)"}
VERSUS = [
    ("gen-dino", "dino"),
    ("gen-dino-dial", "dino"),
    ("gen-dino-dial", "gen-dino"),
    ("gen-dino", "dino-compute-fair"),
]
SE_COVERS = "the training seeds of both arms (with --bank shared, the generator, the bank and the test set are shared)"


def scratch_settings(scale: dict[str, Any]) -> dict[str, Any]:
    """A benchmark scale turned into the from-scratch protocol: Gen-DINO takes stage 1's recipe
    and length (its own epochs and warm-up were for continuing stage 1), so stage 1 is its control."""
    settings = json.loads(json.dumps(scale))
    settings["gen_dino"] = {
        k: v for k, v in settings.get("gen_dino", {}).items() if k not in ("train.epochs", "optim.warmup_epochs")
    }
    settings["stage3_init"] = "scratch"
    return settings


def _timed(secs: dict[str, float], name: str, cfg: PipelineConfig, train: Any, encoders: dict[str, Path]) -> None:
    """``encoders[name] = train()``, and its seconds when it trained now (a run reused from an
    earlier call of this benchmark has no seconds here, rather than the 0 s of loading it; one
    resumed after a kill has the seconds its logged clock holds, from before the kill too)."""
    reused = RunFolder(Path(cfg.out) / name).exported_encoder.exists()
    t0 = time.perf_counter()
    encoders[name] = train()
    if not reused:
        secs[name] = max(round(time.perf_counter() - t0, 1), logged_seconds(Path(cfg.out) / name))


def compute_fair_epochs(secs: dict[str, float], stage1_epochs: int) -> int:
    """The compute-fair run's own epochs: the generator's, the bank's and seed 0's Gen-DINO seconds at
    seed 0's DINO rate. ``init_full`` starts the run's step (and schedule) fresh, so these are epochs on
    top of stage 1, which Gen-DINO's pipeline paid as well; not stage 1's epochs plus these."""
    return epochs_for(secs["generator"] + secs["bank"] + secs["gen-dino"], secs["dino"], stage1_epochs)


def train_arms(
    settings: dict[str, Any],
    seeds: list[int],
    per_seed_bank: bool,
    compute_fair: bool,
    dial: dict[str, Any] | None = None,
    after_seed: Callable[..., Any] | None = None,
) -> tuple[PipelineConfig, dict[str, Path], dict[str, float], Any, dict[str, Any] | None]:
    """Every encoder of the table (``dino``, ``gen-dino``, ``dino-s1``, ...) and its seconds, seed by
    seed (with ``dial``, each seed's third arm right after its first two, so that a run stopped early
    still holds whole paired seeds), and the dial bank's quality report. ``after_seed(cfg, stages,
    encoders, secs, dial_quality)`` runs after each seed's arms (the running table)."""
    encoders: dict[str, Path] = {}
    secs: dict[str, float] = {}
    first = None
    dial_quality = None
    for seed in seeds:
        suffix = "" if seed == seeds[0] else f"-s{seed}"
        if first is None or per_seed_bank:
            run_settings = {**settings, "seed": seed}
            if per_seed_bank and suffix:
                run_settings["out"] = f"{settings['out']}{suffix}"
            result = gensis.run(run_settings)
            cfg = build_config(PipelineConfig, run_settings, use_presets=False)
            stages = stage_configs(cfg)
            first = first or (cfg, stages, result)
            encoders[f"dino{suffix}"] = RunFolder(stages.pretrain.out).exported_encoder
            encoders[f"gen-dino{suffix}"] = RunFolder(stages.gen_dino.out).exported_encoder
            for stage, name, folder in (
                ("pretrain", "dino", stages.pretrain.out),
                ("gen-dino", "gen-dino", stages.gen_dino.out),
                ("train-generator", "generator", stages.generator.out),
                ("generate", "bank", None),
            ):
                # A stage killed without a word never recorded its seconds: its logged clock still has them.
                logged = logged_seconds(folder) if folder is not None else 0.0
                secs[f"{name}{suffix}"] = max(result["stages"][stage]["seconds"], logged)
        else:
            cfg, stages, _ = first  # the shared bank: only the two arms' training seed changes
            for name, base in (("dino", stages.pretrain), ("gen-dino", stages.gen_dino)):
                _timed(
                    secs,
                    f"{name}{suffix}",
                    cfg,
                    lambda cfg=cfg, base=base, name=name, suffix=suffix, seed=seed: stage3_variant(
                        cfg, base, f"{name}{suffix}", {"train.seed": seed}
                    ),
                    encoders,
                )
        if dial:
            quality = dial_arm(cfg, stages, seed, suffix, dial, encoders, secs)
            dial_quality = dial_quality or quality
        if after_seed is not None:  # the running table lives in the first run's folder (--bank per-seed too)
            after_seed(first[0], first[1], encoders, secs, dial_quality)
    cfg, stages, _ = first
    if compute_fair:  # seed 0's DINO continued for the seconds Gen-DINO's pipeline took beyond it
        epochs = compute_fair_epochs(secs, stages.pretrain.train.epochs)
        _timed(
            secs,
            "dino-compute-fair",
            cfg,
            lambda: stage3_variant(
                cfg,
                stages.pretrain,
                "dino-compute-fair",
                {"train.epochs": epochs, "init_from": stages.pretrain.out, "init_full": True},
            ),
            encoders,
        )
    return cfg, encoders, secs, stages, dial_quality


def dial_arm(
    cfg: PipelineConfig,
    stages: Any,
    seed: int,
    suffix: str,
    dial: dict[str, Any],
    encoders: dict[str, Path],
    secs: dict[str, float],
) -> dict[str, Any]:
    """Gen-DINO (training seed ``seed``) from a second bank of the run's generator with one setting
    changed (the diversity dial, e.g. ``guidance_scale=2``); makes that bank on first use and returns
    its quality report."""
    bank = Path(cfg.out) / "bank-dial"
    if not (bank / "quality.json").exists():
        t0 = time.perf_counter()
        gensis.generate({**flatten(stages.generate.model_dump()), **dial, "out": str(bank)})
        secs[f"bank-dial{suffix}"] = round(time.perf_counter() - t0, 1)
    name = f"gen-dino-dial{suffix}"
    _timed(
        secs,
        name,
        cfg,
        lambda: stage3_variant(cfg, stages.gen_dino, name, {"train.seed": seed, "gen.bank": str(bank)}),
        encoders,
    )
    return json.loads((bank / "quality.json").read_text())


def stage1_convergence(folder: Path, out_dim: int) -> str:
    """One DINO run's convergence by the report's rule, in words."""
    return convergence(RunFolder(folder).read_metrics(), out_dim).words()


def report(
    seeds: list[int],
    dial: dict[str, Any] | None,
    cfg: PipelineConfig,
    stages: Any,
    encoders: dict[str, Path],
    secs: dict[str, float],
    dial_quality: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Evaluate what is trained so far (cached by the encoder's sha256) and write the running table:
    ``table.md`` names how many of the asked seeds are in."""
    rows, n_test = evaluate_all(encoders, cfg)
    summary = summarize(rows, VERSUS, n_test=n_test)
    summary["mcnemar"] = seed_mcnemar(Path(cfg.out) / "eval", list(encoders), VERSUS)
    quality = json.loads((Path(stages.generate.out) / "quality.json").read_text())
    extra = mcnemar_md(summary["mcnemar"]) + bank_and_loss_notes(
        summary, encoders, quality, stages.gen_dino.dino.out_dim
    )
    if dial and dial_quality:
        summary["faithfulness_dial"] = {"settings": dial, **dial_quality}
        extra += faithfulness_md(dial_quality, f"Views of the dial's bank ({dial})")
    # Each arm's own movement: its DINO loss over the run (Gen-DINO logs the DINO part apart),
    # and whether stage 1 converged by the report's rule.
    summary["dino_loss"] = {
        name: loss_trend(run_folder(path), "loss_dino" if name.startswith("gen") else "loss")
        for name, path in encoders.items()
    }
    summary["convergence"] = {
        name: stage1_convergence(run_folder(path), stages.pretrain.dino.out_dim)
        for name, path in encoders.items()
        if name.split("-s")[0] == "dino"
    }
    extra += "\nDINO loss, mean of the first and last tenth of each run:\n\n" + "".join(
        f"- {n}: {c['first']:.2f} -> {c['last']:.2f} ({c['direction']})\n" for n, c in summary["dino_loss"].items() if c
    )
    extra += "\nStage 1 (the DINO arm) by the report's convergence rule:\n\n" + "".join(
        f"- {n}: {c}\n" for n, c in summary["convergence"].items()
    )
    n = stages.pretrain.train.epochs
    labels = {
        **LABELS,
        "dino": f"DINO from scratch, {n} epochs",
        "gen-dino": f"Gen-DINO from scratch, {n} epochs",
        "gen-dino-dial": f"Gen-DINO from scratch, {n} epochs, the dial's bank ({dial})",
    }
    if "dino-compute-fair" in secs or "dino-compute-fair" in encoders:
        labels["dino-compute-fair"] = f"DINO, compute-fair: seed 0's DINO + {fair_epochs(cfg)} epochs"
    seeds_in = len([e for e in encoders if split_name(e)[0] == "gen-dino"])
    head = f"Seeds in: {seeds_in} of {len(seeds)} asked ({', '.join(map(str, seeds))}).\n\n"
    table = write_table(Path(cfg.out), summary, labels, extra, se_covers=SE_COVERS, head=head)
    print(table.read_text())
    return summary, rows, quality


MACHINE_KEYS = ("device", "out", "progress", "data.path", "data.eval_path")  # not the recipe


def recipe_digest(settings: dict[str, Any]) -> str:
    """sha256 of the settings that make the experiment (where it ran and where its files lie left out)."""
    recipe = {k: v for k, v in settings.items() if k not in MACHINE_KEYS}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def data_digest(cfg: PipelineConfig, resolution: int) -> str:
    """sha256 of the training and test pixels and labels as the arms see them: the same whether
    they came from the zips or from gpu_check.py's .npz copies of them."""
    h = hashlib.sha256()
    for path, n in ((cfg.data.path, cfg.data.max_images), (cfg.data.eval_path, None)):
        data = gensis.load_images(str(path), resolution, max_images=n, progress=False)
        h.update(data.images.contiguous().numpy())
        h.update(json.dumps(data.labels.tolist()).encode())
    return h.hexdigest()


def merge(result: dict[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """This run's rows and per-seed McNemar tests with those of another machine's run of the same
    recipe on the same pixels (the last result in ``path``); its seeds keep their own numbers."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    other = json.loads(lines[-1])
    for key in ("recipe_sha256", "data_sha256"):
        if other.get(key) != result[key]:
            raise SystemExit(
                f"--merge {path}: another {key.split('_')[0]} than this run's, so its seeds do not "
                "join this table (only an identical recipe on identical pixels merges)"
            )
    clash = set(other["seeds"]) & set(result["seeds"])
    if clash:
        raise SystemExit(f"--merge {path}: seeds {sorted(clash)} are in both runs; give the other run other seeds")

    def named(name: str, seeds: list[int]) -> str:
        group, seed = split_name(name)
        return f"{group}-s{seeds[0] if name == group else seed}"

    rows = {named(n, result["seeds"]): r for n, r in result["results"].items()}
    rows.update({named(n, other["seeds"]): r for n, r in other["results"].items()})

    def renumbered(run: dict[str, Any], pair: str) -> list[dict[str, Any]]:
        first = run["seeds"][0]  # a run's first seed is named without a suffix, read back as seed 0
        return [
            {**t, "seed": first if t["seed"] == 0 else t["seed"]}
            for t in run["summary"].get("mcnemar", {}).get(pair, [])
        ]

    pairs = dict.fromkeys([*result["summary"].get("mcnemar", {}), *other["summary"].get("mcnemar", {})])
    tests = {pair: [*renumbered(result, pair), *renumbered(other, pair)] for pair in pairs}
    return rows, tests


def fair_epochs(cfg: PipelineConfig) -> int:
    """The compute-fair run's epochs on top of seed 0's DINO, as it recorded them."""
    return build_config(
        PretrainConfig, {}, use_presets=False, config_file=Path(cfg.out) / "dino-compute-fair" / "config.yaml"
    ).train.epochs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=sorted(DATASETS), default="pcam")
    p.add_argument(
        "--scale",
        choices=("cpu", "converged", "gpu", "device-check", "dry"),
        default="cpu",
        help="device-check and dry: cifar10 only (benchmarks/gpu_scratch.sh)",
    )
    p.add_argument("--train", default=None, help="training images (default: the set's train.zip)")
    p.add_argument("--test", default=None, help="test images (default: the set's test.zip)")
    p.add_argument("--out", default=None, help="default: runs/gensis_scratch_<data>")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds of both arms")
    p.add_argument("--epochs", type=int, default=None, help="N, both arms (default: the scale's stage 1)")
    p.add_argument("--max-images", type=int, default=None, help="training images (the low-data point)")
    p.add_argument("--generator-epochs", type=int, default=None, help="stage 2 this long instead of the scale's")
    p.add_argument("--bank", choices=("shared", "per-seed"), default="shared")
    p.add_argument(
        "--dial",
        type=settings_arg,
        default=None,
        metavar="KEY=VALUE[;KEY=VALUE]",
        help="also Gen-DINO from a second bank with these generate settings (e.g. guidance_scale=2)",
    )
    p.add_argument("--no-compute-fair", action="store_true", help="skip the compute-fair DINO run")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default=None, help="also append the result here")
    p.add_argument(
        "--merge",
        type=Path,
        default=None,
        metavar="RESULT_JSONL",
        help="also write table-merged.md with the seeds of another machine's run of the same recipe",
    )
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    data, preset, scales = DATASETS[args.data]
    if args.scale not in scales:
        p.error(f"--scale {args.scale}: not defined for --data {args.data}")
    settings = scratch_settings(scales[args.scale])
    if args.epochs is not None:
        settings["pretrain"]["train.epochs"] = args.epochs
    if args.max_images is not None:
        settings["data.max_images"] = args.max_images
    if args.generator_epochs is not None:
        settings["generator"]["train.epochs"] = args.generator_epochs
    settings.update(
        {
            "out": args.out or f"runs/gensis_scratch_{args.data}",
            "preset": preset,
            "device": args.device,
            "data.path": args.train or str(data / "train.zip"),
            "data.eval_path": args.test or str(data / "test.zip"),
            "progress": not args.quiet,
        }
    )
    seeds = [int(s) for s in args.seeds.split(",")]
    if stage_configs(build_config(PipelineConfig, settings, use_presets=False)).baseline != "dino":
        p.error("gen_dino: stage 3's recipe differs from stage 1's beyond gen.*, so DINO is not its control")
    dial = args.dial

    cfg, encoders, secs, stages, dial_quality = train_arms(
        settings, seeds, args.bank == "per-seed", not args.no_compute_fair, dial, partial(report, seeds, dial)
    )
    summary, rows, quality = report(seeds, dial, cfg, stages, encoders, secs, dial_quality)
    result = header("gensis_scratch", resolve_device(args.device))
    result.update(
        data=args.data,
        scale=args.scale,
        bank=args.bank,
        dial=dial,
        seeds=seeds,
        settings=settings,
        epochs=stages.pretrain.train.epochs,
        seconds=secs,
        results=rows,
        summary=summary,
        generator_quality=quality,
        recipe_sha256=recipe_digest(settings),
        data_sha256=data_digest(cfg, stages.pretrain.data.resolution),
    )
    if args.merge:
        rows, tests = merge(result, args.merge)
        merged = summarize(rows, VERSUS, n_test=summary["n_test"])
        merged["mcnemar"] = tests
        md = write_table(
            Path(cfg.out) / "merged",
            merged,
            {},
            mcnemar_md(tests),
            se_covers=SE_COVERS,
            head=f"Seeds of {cfg.out} and of {args.merge} (the same recipe and pixels).\n\n",
        )
        print(md.read_text())
    emit(result, args.json)


if __name__ == "__main__":
    main()
