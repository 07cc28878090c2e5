"""Read back what the real W&B and MLflow libraries wrote (issue 40): W&B's offline run file
(its record log, parsed with wandb's own protobuf classes) and MLflow's local store (through
MLflow's own client)."""

from __future__ import annotations

import json
from pathlib import Path

BLOCK = 32768  # the .wandb file is a LevelDB-style log: 32 KiB blocks of checksummed records
HEADER = 7  # ":W&B", a 2-byte magic and a version byte; then each record: crc32 (4), length (2), type (1)


def wandb_records(run_file: Path):
    """The protobuf records of one offline ``run-<id>.wandb`` file."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", run_file
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + HEADER : pos + HEADER + length], pos + HEADER + length
        if kind == 0:  # zero padding up to the block's end
            pos += BLOCK - pos % BLOCK if pos % BLOCK else 0
            continue
        pending += chunk
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def wandb_history(root: Path) -> tuple[list[dict], dict]:
    """(the history rows, the config) of the one offline W&B run under ``root``."""
    (run_file,) = root.glob("wandb/offline-run-*/run-*.wandb")
    rows, config = [], {}
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            rows.append(_nest(record.history.item))
        elif kind in ("run", "config"):  # the config comes with the run record, updates after
            config.update(_nest((record.run.config if kind == "run" else record.config).update))
    return rows, config


def _nest(items) -> dict:
    """W&B's items (a key, or a nested key path for a logged dict such as an image) as a dict."""
    out: dict = {}
    for item in items:
        path = [item.key] if item.key else list(item.nested_key)
        target = out
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = json.loads(item.value_json)
    return out


def mlflow_run(root: Path, experiment: str = "gensis"):
    """(client, run) of the one MLflow run in the local store of the run folder ``root``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{(root / 'mlflow.db').resolve().as_posix()}")
    exp = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([exp.experiment_id])
    return client, run
