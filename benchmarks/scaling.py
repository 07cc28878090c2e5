"""Data-parallel scaling of the three heavy stages: measured on 1 and 2 processes, projected to more GPUs.

Measured: throughput (steady state, the first steps skipped) of (a) DINO pretraining, (b)
generator training and (c) generation, with 1 process and with 2 processes on the CPU
(torchrun, gloo, OMP_NUM_THREADS = cores / processes, the same global batch), and with
``--device cuda`` on 1 GPU (and on every visible GPU when there are several), on real
CIFAR-10 images (a spread subset) at 32 px.

Projected: each data-parallel training step all-reduces the DDP module's gradients
(4 bytes per trainable parameter; DINO also all-reduces its center). A ring all-reduce of B
bytes over N devices moves 2 (N-1)/N B per device, and each message costs 2 (N-1) hop
latencies. With the per-device batch of the measurement kept (weak scaling), the
efficiency is t_step / (t_step + exposed communication): "no overlap" counts it all,
"overlap" lets DDP hide gradient traffic behind the backward pass (~2/3 of the step).
Multi-node rings are priced at the inter-node bandwidth of one NIC per node (nodes with a
NIC per GPU do better). Generation needs no communication: its shards are independent.

    python benchmarks/scaling.py                     # CPU, 1 vs 2 processes (idle machine)
    python benchmarks/scaling.py --device cuda       # plus 1 GPU (all GPUs if several)
    python benchmarks/scaling.py --quick             # smoke check, seconds of work per run
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from _common import emit, header

from gensis.config.overrides import build_config
from gensis.config.schema import PretrainConfig, TrainGeneratorConfig
from gensis.generator.unet import build_unet
from gensis.models.backbones import build_encoder
from gensis.runtime.device import resolve_device
from gensis.ssl.dino import DINO

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "train.zip"
PRETRAIN = ["preset=cifar10", "model.backbone=resnet10t", "model.cifar_stem=false", "train.knn_every=0"]
UNET = ["model.spec=tiny", "model.block_out_channels=[32,64,64]"]
WIDTHS = [32, 64, 64]
BUCKET_BYTES = 25 * 2**20  # DDP's default bucket_cap_mb


def _gensis(args: list[str], processes: int, threads: int) -> str:
    """Run a gensis command (under torchrun when processes > 1); its console output."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "gensis.cli", *args]
    if processes > 1:
        with socket.socket() as sock:  # a free port for the rendezvous (port 0 hangs)
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={processes}",
            f"--master_port={port}",
            "-m",
            "gensis.cli",
            *args,
        ]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"scaling: {' '.join(args[:1])} with {processes} process(es) failed:\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


def _steady_training(out: Path, batch: int, skip: int) -> dict[str, float]:
    """Images/s and seconds per step from metrics.jsonl (logged every step), first steps skipped."""
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"step"' in x]
    times = [r["time"] for r in rows if "loss" in r]
    dts = [b - a for a, b in itertools.pairwise(times)][max(skip - 1, 0) :]
    if not dts:
        sys.exit(f"scaling: {out}: too few steps logged to skip {skip}")
    # The median ignores one-off pauses (an epoch's checkpoint) that a long run amortizes.
    step_s = statistics.median(dts)
    return {
        "images_per_s": round(batch / step_s, 2),
        "step_s": round(step_s, 4),
        "mean_images_per_s": round(batch * len(dts) / sum(dts), 2),
    }


def _steady_generation(bank: Path, processes: int) -> dict[str, float]:
    """Generated images/s from the shard files' write times, each process's first shard skipped."""
    from safetensors import safe_open

    shards = []
    for path in bank.glob("shard-*.safetensors"):
        with safe_open(str(path), framework="pt") as f:
            shards.append((path.stat().st_mtime, f.get_slice("images").get_shape()[0]))
    shards.sort()
    if len(shards) <= processes:
        sys.exit(f"scaling: {bank}: {len(shards)} shards, too few to skip the first of {processes} processes")
    (t0, _), rest = shards[processes - 1], shards[processes:]
    seconds = rest[-1][0] - t0
    return {"images_per_s": round(sum(n for _, n in rest) / seconds, 2), "shards": len(shards)}


def _runs(args) -> list[tuple[str, int, int]]:
    """(device, processes, OMP threads per process) of every measurement."""
    cores = args.cores
    runs = [("cpu", 1, cores), ("cpu", 2, max(cores // 2, 1))]
    if args.device == "cuda":
        runs.append(("cuda", 1, cores))
        if torch.cuda.device_count() > 1:
            runs.append(("cuda", torch.cuda.device_count(), max(cores // torch.cuda.device_count(), 1)))
    return runs


def measure(args, work: Path) -> dict[str, dict[str, dict]]:
    data = [f"data.path={args.data}", f"data.max_images={args.max_images}", "train.progress=false", "train.log_every=1"]
    results: dict[str, dict[str, dict]] = {"pretrain": {}, "train_generator": {}, "generate": {}}
    encoder = generator = None
    for device, procs, threads in _runs(args):
        key = f"{device}x{procs}"
        out = work / f"pretrain_{key}"
        _gensis(
            [
                "pretrain",
                "-q",
                *PRETRAIN,
                *data,
                f"train.device={device}",
                f"train.batch_size={args.batch}",
                f"train.max_steps={args.steps}",
                f"out={out}",
            ],
            procs,
            threads,
        )
        results["pretrain"][key] = _steady_training(out, args.batch, args.skip)
        encoder = encoder or out / "exported" / "encoder.safetensors"
        print(f"pretrain        {key:8s} {results['pretrain'][key]}", file=sys.stderr)

        out = work / f"generator_{key}"
        _gensis(
            [
                "train-generator",
                "-q",
                *UNET,
                *data,
                f"encoder={encoder}",
                f"train.device={device}",
                f"train.batch_size={args.gen_batch}",
                f"train.max_steps={args.steps}",
                f"out={out}",
            ],
            procs,
            threads,
        )
        results["train_generator"][key] = _steady_training(out, args.gen_batch, args.skip)
        generator = generator or out
        print(f"train-generator {key:8s} {results['train_generator'][key]}", file=sys.stderr)

        out = work / f"bank_{key}"
        _gensis(
            [
                "generate",
                "-q",
                f"generator={generator}",
                f"data_path={args.data}",
                f"max_images={args.sources}",
                f"shard_size={args.shard_size}",
                f"views_per_image={args.views}",
                "interpolations_per_image=1",
                f"steps={args.sample_steps}",
                f"batch_size={args.gen_batch}",
                f"device={device}",
                "progress=false",
                "quality_sources=8",
                f"out={out}",
            ],
            procs,
            threads,
        )
        results["generate"][key] = _steady_generation(out, procs)
        print(f"generate        {key:8s} {results['generate'][key]}", file=sys.stderr)
    return results


def communication(args) -> dict[str, dict[str, int]]:
    """Per training step: gradient bytes all-reduced, DDP buckets, and small all-reduces (latency only)."""
    cfg = build_config(PretrainConfig, {"preset": "cifar10", "model.backbone": "resnet10t", "model.cifar_stem": False})
    encoder = build_encoder(cfg.model, 32)
    dino = DINO(encoder, cfg.dino)
    dino_grads = 4 * sum(p.numel() for p in dino.student.parameters() if p.requires_grad)
    center = 4 * (cfg.dino.out_dim + 1)  # batch sum of the teacher logits and the count
    gcfg = build_config(
        TrainGeneratorConfig, {"encoder": "x", "model.spec": "tiny", "model.block_out_channels": WIDTHS}
    )
    unet = build_unet(gcfg, 32, 3, encoder.embed_dim)
    unet_grads = 4 * sum(p.numel() for p in unet.parameters() if p.requires_grad)
    # Small all-reduces each step: NaN check, signal check (+ DINO's center sum and count).
    return {
        "pretrain": {
            "bytes": dino_grads + center,
            "gradient_bytes": dino_grads,
            "center_bytes": center,
            "buckets": math.ceil(dino_grads / BUCKET_BYTES),
            "small_messages": 4,
        },
        "train_generator": {
            "bytes": unet_grads,
            "gradient_bytes": unet_grads,
            "center_bytes": 0,
            "buckets": math.ceil(unet_grads / BUCKET_BYTES),
            "small_messages": 2,
        },
    }


def topologies(args) -> list[tuple[str, int, float, float]]:
    """(name, devices, bytes/s of the slowest ring link, seconds per hop)."""
    gpn = args.gpus_per_node
    rows = [
        (f"1 node x {gpn} GPUs, NVLink {args.nvlink_gbs:g} GB/s", gpn, args.nvlink_gbs * 1e9, args.latency_us * 1e-6)
    ]
    for nodes in args.nodes:
        for gbit in args.internode_gbits:
            rows.append(
                (
                    f"{nodes} nodes x {gpn} GPUs, {gbit:g} Gb/s",
                    nodes * gpn,
                    gbit * 1e9 / 8,
                    args.internode_latency_us * 1e-6,
                )
            )
    return rows


def project(step_s: float, comm: dict[str, int], n: int, bandwidth: float, hop_s: float) -> dict[str, float]:
    ring = 2 * (n - 1) / n
    grads = ring * comm["gradient_bytes"] / bandwidth + comm["buckets"] * 2 * (n - 1) * hop_s
    small = ring * comm["center_bytes"] / bandwidth + comm["small_messages"] * 2 * (n - 1) * hop_s
    no_overlap = step_s / (step_s + grads + small)
    overlap = step_s / (step_s + max(0.0, grads - 2 / 3 * step_s) + small)
    # The step time from which even the no-overlap efficiency reaches 90 %: device-independent.
    return {
        "comm_ms": round(1e3 * (grads + small), 3),
        "efficiency_no_overlap": round(no_overlap, 3),
        "efficiency_overlap": round(overlap, 3),
        "step_ms_for_90pct": round(9e3 * (grads + small), 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--max-images", type=int, default=2048, help="spread subset the training stages read")
    p.add_argument("--batch", type=int, default=256, help="DINO global batch")
    p.add_argument("--gen-batch", type=int, default=128, help="generator global batch and sampling batch")
    p.add_argument("--steps", type=int, default=40, help="training steps per run (train.max_steps)")
    p.add_argument("--skip", type=int, default=5, help="first steps left out of the steady state")
    p.add_argument("--sources", type=int, default=256, help="source images generated from")
    p.add_argument("--shard-size", type=int, default=16)
    p.add_argument("--views", type=int, default=2, help="views per image (plus one interpolation)")
    p.add_argument("--sample-steps", type=int, default=20, help="sampler steps")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="CPU cores shared by the processes")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cuda: also measure on the GPU(s)")
    p.add_argument("--nvlink-gbs", type=float, default=200.0, help="effective NVLink all-reduce GB/s")
    p.add_argument(
        "--internode-gbits",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[100.0, 200.0],
        help="inter-node bandwidths, Gb/s (InfiniBand or Ethernet)",
    )
    p.add_argument("--nodes", type=lambda s: [int(x) for x in s.split(",")], default=[2, 4])
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument("--latency-us", type=float, default=5.0, help="per-hop latency within a node")
    p.add_argument("--internode-latency-us", type=float, default=10.0, help="per-hop latency between nodes")
    p.add_argument(
        "--step-ms",
        type=lambda s: dict((k, float(v)) for k, v in (x.split("=") for x in s.split(","))),
        default={},
        help="project from these step times instead, e.g. pretrain=40,train_generator=15 (a GPU's, measured elsewhere)",
    )
    p.add_argument("--work", default=None, help="folder for the runs (default: a temporary one)")
    p.add_argument("--quick", action="store_true", help="smoke check: tiny data, batches and step counts")
    p.add_argument("--out", default=None, help="append the result as one JSON line to this file")
    args = p.parse_args()
    if args.quick:
        args.max_images, args.batch, args.gen_batch, args.steps, args.skip = 128, 32, 16, 5, 2
        args.sources, args.shard_size, args.views, args.sample_steps = 16, 2, 1, 2
    device = resolve_device(args.device)
    work = Path(args.work or tempfile.mkdtemp(prefix="gensis_scaling_"))

    measured = measure(args, work)
    comm = communication(args)
    base = "cudax1" if args.device == "cuda" else "cpux1"
    result = {
        **header("scaling", device),
        "quick": args.quick,
        "max_images": args.max_images,
        "batch": {"pretrain": args.batch, "train_generator": args.gen_batch, "generate": args.gen_batch},
        "steps": args.steps,
        "skip": args.skip,
        "cores": args.cores,
        "measured": measured,
        "communication_per_step": comm,
        "projection_from": args.step_ms or base,
        "projection": {},
    }
    lines = [f"{'stage':16s} {'run':8s} {'images/s':>10s} {'vs 1 proc':>9s}"]
    for stage, runs in measured.items():
        for key, m in runs.items():
            ref = runs[f"{key.split('x')[0]}x1"]["images_per_s"]
            lines.append(f"{stage:16s} {key:8s} {m['images_per_s']:10.1f} {m['images_per_s'] / ref:9.2f}")
    lines += [
        "",
        f"projection (weak scaling: per-device batch and step time of {base}):",
        f"{'stage':16s} {'step ms':>8s} {'MB/step':>8s} {'topology':40s} {'comm ms':>8s} "
        f"{'eff no-ovl':>10s} {'eff ovl':>8s} {'90% from step ms':>16s}",
    ]
    for stage in ("pretrain", "train_generator"):
        step_s = args.step_ms.get(stage, 1e3 * measured[stage][base]["step_s"]) / 1e3
        result["projection"][stage] = {}
        for name, n, bandwidth, hop in topologies(args):
            row = project(step_s, comm[stage], n, bandwidth, hop)
            result["projection"][stage][name] = row
            lines.append(
                f"{stage:16s} {1e3 * step_s:8.1f} {comm[stage]['bytes'] / 1e6:8.2f} {name:40s} "
                f"{row['comm_ms']:8.2f} {row['efficiency_no_overlap']:10.3f} {row['efficiency_overlap']:8.3f} "
                f"{row['step_ms_for_90pct']:16.1f}"
            )
    if base.startswith("cpu") and not args.step_ms:
        lines.append(
            "note: CPU step times flatter the projection; a GPU step is far shorter (--device cuda or "
            "--step-ms), compare it with the last column"
        )
    lines.append("generate: no communication (independent shards); efficiency ~1 up to #shards devices")
    print("\n".join(lines), file=sys.stderr)
    emit(result, args.out)


if __name__ == "__main__":
    main()
