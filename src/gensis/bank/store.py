"""Reading and writing view-bank shards (see :mod:`gensis.bank`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from gensis.config.base import DataConfig
from gensis.config.generator import GenerateConfig
from gensis.config.overrides import config_range
from gensis.errors import CheckpointError, DataError, by_rule, first_line
from gensis.runtime.io import atomic_write_text, recorded_path, save_safetensors
from gensis.runtime.trust import read_text

BANK_FORMAT = "gensis.bank/1"
SHARD_KEYS = ("images", "source", "partner", "alpha", "seed")
# A latent bank stores fp16 latents (scaled, as the generator samples them) instead of uint8
# images and decodes them when read: 224 px, 28x28x4: 6,272 bytes a view instead of 150,528.
STORAGES = {"pixels": "images", "latents": "latents"}


@dataclass
class BankIndex:
    generator_sha256: str
    encoder_sha256: str
    resolution: int
    n_sources: int
    shard_size: int
    views_per_image: int
    interpolations_per_image: int
    settings: dict = field(default_factory=dict)  # sampler, steps, guidance, alpha range, seed
    shards: list[int] = field(default_factory=list)  # finished shard numbers
    format: str = BANK_FORMAT
    data_fingerprint: str = ""  # ImageData.fingerprint() of the sources ("": a bank from before it)
    storage: str = "pixels"  # or "latents": decoded with the autoencoder below when read
    vae: str = ""  # latents: the autoencoder (folder or hub id) and its content digest
    vae_sha256: str = ""
    vae_relative: str = ""  # the autoencoder relative to the bank: found when the run folder moved

    @property
    def n_shards(self) -> int:
        return -(-self.n_sources // self.shard_size)

    def shard_range(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.n_sources))


def index_path(root: Path) -> Path:
    return root / str(GenerateConfig.product.marker)  # the declared marker: the guard reads the same name


def shard_path(root: Path, shard: int) -> Path:
    return root / f"shard-{shard:05d}.safetensors"


# Field -> (type, smallest value) of index.json; checked before any field is used.
_INDEX_FIELDS = {
    "generator_sha256": (str, None),
    "encoder_sha256": (str, None),
    "resolution": (int, 1),
    "n_sources": (int, 1),
    "shard_size": (int, 1),
    "views_per_image": (int, 0),
    "interpolations_per_image": (int, 0),
    "settings": (dict, None),
    "shards": (list, None),
    "format": (str, None),
    "data_fingerprint": (str, None),
    "storage": (str, None),
    "vae": (str, None),
    "vae_relative": (str, None),
    "vae_sha256": (str, None),
}


def read_index(root: Path) -> BankIndex | None:
    p = index_path(root)
    if not p.exists():
        return None
    try:
        data = json.loads(read_text(p, "bank index"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, DataError) as exc:
        raise CheckpointError(f"{p}: corrupt bank index ({first_line(exc)})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{p}: corrupt bank index (expected a JSON object)")
    if data.get("format") != BANK_FORMAT:
        raise CheckpointError(f"{p}: not a gensis view bank (format={data.get('format')!r})")
    _check_index_fields(p, data)
    try:
        return BankIndex(**data)
    except TypeError as exc:
        raise CheckpointError(f"{p}: corrupt bank index ({first_line(exc)})") from None


def _check_index_fields(p: Path, data: dict) -> None:
    for key, (kind, least) in _INDEX_FIELDS.items():
        if key not in data:
            continue
        value = data[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if ok and least is not None:
            ok = value >= least
        if not ok:
            what = kind.__name__ + (f" >= {least}" if least is not None else "")
            raise CheckpointError(f"{p}: field '{key}' must be {what}, got {json.dumps(value)[:60]}")
    lo, hi = config_range(DataConfig, "resolution")  # the sizes a bank can have been made at
    if "resolution" in data and not lo <= data["resolution"] <= hi:
        raise CheckpointError(
            f"{p}: field 'resolution' must be in [{lo}, {hi}] (data.resolution's range), "
            f"got {json.dumps(data['resolution'])[:60]}"
        )
    if data.get("storage", "pixels") not in STORAGES:
        raise CheckpointError(
            f"{p}: field 'storage' must be one of {sorted(STORAGES)}, got {json.dumps(data['storage'])[:60]}"
        )
    if data.get("storage") == "latents" and not (data.get("vae") and data.get("vae_sha256")):
        raise CheckpointError(f"{p}: a latent bank needs fields 'vae' and 'vae_sha256' (its decoder)")
    n_shards = -(-data.get("n_sources", 1) // data.get("shard_size", 1))
    bad = [s for s in data.get("shards", []) if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < n_shards]
    if bad:
        raise CheckpointError(f"{p}: field 'shards' lists {json.dumps(bad[:3])[:60]}, outside [0, {n_shards})")


def shard_problem(root: Path, index: BankIndex, shard: int) -> str | None:
    """Why a listed shard cannot be used (missing, truncated, another bank's), or None.
    Reads the header only: safetensors checks that the file covers every tensor."""
    path = shard_path(root, shard)
    if not path.is_file():
        return "missing"
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        return f"truncated or corrupt: {first_line(exc)}"
    if (meta.get("format"), meta.get("generator_sha256"), meta.get("shard")) != (
        BANK_FORMAT,
        index.generator_sha256,
        str(shard),
    ):
        return "written for another bank or shard"
    return None


def broken_shards(root: Path, index: BankIndex) -> dict[int, str]:
    """Listed shards that cannot be used, with why."""
    found = {s: shard_problem(root, index, s) for s in index.shards}
    return {s: why for s, why in found.items() if why is not None}


def shard_keys(index: BankIndex) -> tuple[str, ...]:
    """The tensors of a shard: the payload (images or latents), then source, partner, alpha, seed."""
    return (STORAGES[index.storage],) + SHARD_KEYS[1:]


def shard_content_problem(index: BankIndex, shard: int, t: dict[str, torch.Tensor]) -> str | None:
    """What is wrong with a shard's tensors against ``index`` (names, dtypes, shapes, index
    ranges, views per source), or None: a shard with a right header and wrong contents would
    otherwise raise KeyError or IndexError mid-training, or train on garbage."""
    keys = shard_keys(index)
    if set(t) != set(keys):
        return f"tensors {sorted(t)}, expected {sorted(keys)}"
    payload, src, partner, alpha, seed = (t[k] for k in keys)
    dtypes = {
        "source": torch.int64,
        "partner": torch.int64,
        "alpha": torch.float32,
        "seed": torch.int64,
        "images": torch.uint8,
        "latents": torch.float16,
    }
    for k in keys:
        if t[k].dtype != dtypes[k]:
            return f"'{k}' is {t[k].dtype}, expected {dtypes[k]}"
    m = len(src)
    if any(x.dim() != 1 or len(x) != m for x in (src, partner, alpha, seed)):
        shapes = [tuple(x.shape) for x in (src, partner, alpha, seed)]
        return f"source, partner, alpha and seed must be 1-D of one length, got {shapes}"
    if (
        payload.dim() != 4
        or payload.shape[0] != m
        or (keys[0] == "images" and tuple(payload.shape[1:]) != (3, index.resolution, index.resolution))
    ):
        return f"'{keys[0]}' shaped {tuple(payload.shape)} for {m} rows at {index.resolution} px"
    rows = index.shard_range(shard)
    if m and not (int(src.min()) >= rows.start and int(src.max()) < rows.stop):
        return f"sources {int(src.min())}..{int(src.max())} outside this shard's {rows.start}..{rows.stop - 1}"
    if m and not (int(partner.min()) >= -1 and int(partner.max()) < index.n_sources):
        return f"partners {int(partner.min())}..{int(partner.max())} outside -1..{index.n_sources - 1}"
    if bool((partner == src).any()) or not bool(((alpha >= 0) & (alpha <= 1)).all()):
        return "an interpolation with its own source, or an alpha outside [0, 1]"
    views = torch.bincount(src[partner < 0] - rows.start, minlength=len(rows))
    interps = torch.bincount(src[partner >= 0] - rows.start, minlength=len(rows))
    if bool((views != index.views_per_image).any()) or bool((interps != index.interpolations_per_image).any()):
        return (
            f"each source must have {index.views_per_image} views and {index.interpolations_per_image} interpolations"
        )
    return None


def open_decoder(root: Path, index: BankIndex, device: torch.device | str = "cpu"):
    """The autoencoder of a latent bank, refused when it is not the one the bank was made with."""
    from gensis.autoencoder.latent import load_vae, vae_sha256

    vae = load_vae(recorded_path(index.vae, index.vae_relative, root), device, key=f"{index_path(root)}: vae")
    digest = vae_sha256(vae)
    if digest != index.vae_sha256:
        raise CheckpointError(
            f"{index_path(root)}: its latents need the autoencoder {index.vae} with sha256 "
            f"{index.vae_sha256[:12]}, found {digest[:12]}"
        )
    return vae


def write_index(root: Path, index: BankIndex) -> None:
    atomic_write_text(index_path(root), json.dumps(asdict(index), indent=1) + "\n")


def write_shard(
    root: Path, index: BankIndex, shard: int, tensors: dict[str, torch.Tensor], record: bool = True
) -> None:
    """Write one finished shard, then record it in the index (in that order).

    ``record=False`` writes the shard file only: with several processes, one of them merges
    the finished shards into the index afterwards (see :func:`adopt_finished_shards`).
    """
    keys = shard_keys(index)
    missing = set(keys) - set(tensors)
    if missing:
        raise ValueError(f"shard lacks {sorted(missing)}")
    meta = {"format": BANK_FORMAT, "generator_sha256": index.generator_sha256, "shard": str(shard)}
    clean = {k: tensors[k].contiguous().cpu() for k in keys}
    save_safetensors(shard_path(root, shard), clean, meta)
    if record:
        index.shards = sorted(set(index.shards) | {shard})
        write_index(root, index)


def adopt_finished_shards(root: Path, index: BankIndex) -> list[int]:
    """Add shard files of this bank missing from the index to it (in memory); returns them.

    A multi-process run that was killed before its merge leaves such files. They were
    written atomically, so one that exists is complete; its metadata must name this bank's
    generator and its own shard number, else it is left alone (and regenerated).
    """
    found = []
    for shard in range(index.n_shards):
        path = shard_path(root, shard)
        if shard in index.shards or not path.is_file():
            continue
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
        except (SafetensorError, OSError):
            continue
        if (meta.get("format"), meta.get("generator_sha256"), meta.get("shard")) == (
            BANK_FORMAT,
            index.generator_sha256,
            str(shard),
        ):
            found.append(shard)
    index.shards = sorted(set(index.shards) | set(found))
    return found


class ViewBank:
    """Random access to the generated views of each source image."""

    def __init__(self, root: str | Path, generator_sha256: str | None = None) -> None:
        self.root = Path(root)
        index = read_index(self.root)
        if index is None:
            raise CheckpointError(f"no view bank at {self.root} (index.json missing)")
        if generator_sha256 is not None and index.generator_sha256 != generator_sha256:
            raise CheckpointError(
                f"{index_path(self.root)}: bank written by another generator "
                f"({index.generator_sha256[:12]}, expected {generator_sha256[:12]})"
            )
        self.index = index
        self._load = lru_cache(maxsize=8)(self._read_shard)
        self._vae = None  # a latent bank's decoder, loaded when first needed

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """uint8 images of a latent bank's stored latents."""
        from gensis.autoencoder.latent import decode_latents

        if self._vae is None:
            self._vae = open_decoder(self.root, self.index)
        return decode_latents(self._vae, latents.float())

    @property
    def complete(self) -> bool:
        """Every shard listed, and every listed shard file present and whole."""
        return len(self.index.shards) == self.index.n_shards and not broken_shards(self.root, self.index)

    def check_complete(self) -> None:
        """One-line CheckpointError naming the first shard that is not generated or not usable."""
        missing = sorted(set(range(self.index.n_shards)) - set(self.index.shards))
        if missing:
            raise CheckpointError(
                f"{self.root}: view bank is incomplete (shards {missing[:5]} missing); finish gensis generate first"
            )
        for shard, why in broken_shards(self.root, self.index).items():
            raise CheckpointError(
                f"{shard_path(self.root, shard)}: listed in index.json but {why}; "
                "rerun gensis generate to regenerate it"
            )

    def check_data(self, fingerprint: str, source: str, key: str) -> None:
        """Refuse sources other than the bank's images (a bank without a fingerprint is trusted)."""
        saved = self.index.data_fingerprint
        if saved and saved != fingerprint:
            raise CheckpointError(
                by_rule(
                    "fingerprint",
                    f"{key}: {self.root} was generated from other images than "
                    f"{source} (data fingerprint {saved[:12]}, {source} gives {fingerprint[:12]})",
                )
            )

    def _read_shard(self, shard: int) -> dict[str, torch.Tensor]:
        path = shard_path(self.root, shard)
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{path}: unreadable bank shard ({exc})") from None
        problem = shard_content_problem(self.index, shard, tensors)
        if problem:
            raise CheckpointError(
                f"{path}: does not hold what index.json describes ({problem}); remove it and rerun gensis generate"
            )
        return tensors

    def entries(self, source: int) -> dict[str, torch.Tensor]:
        """Every view of ``source``: images (V, 3, R, R) uint8 (decoded, in a latent bank) with
        partner, alpha and seed."""
        if not 0 <= source < self.index.n_sources:
            raise IndexError(f"source {source} outside [0, {self.index.n_sources})")
        shard = source // self.index.shard_size
        if shard not in self.index.shards:
            raise CheckpointError(f"{self.root}: shard {shard} (source {source}) is not generated yet")
        data = self._load(shard)
        mask = data["source"] == source
        out = {k: v[mask] for k, v in data.items()}
        if "latents" in out:
            out["images"] = self.decode(out.pop("latents"))
        return out

    def views_of(self, source: int) -> torch.Tensor:
        e = self.entries(source)
        return e["images"][e["partner"] < 0]

    def interpolations_of(self, source: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e = self.entries(source)
        keep = e["partner"] >= 0
        return e["images"][keep], e["partner"][keep], e["alpha"][keep]
