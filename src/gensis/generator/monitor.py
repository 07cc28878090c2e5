"""Is the generator learning its condition? A check that runs during stage-2 training.

Every ``train.monitor_every`` steps, on images held out of training, with fixed noise and
timesteps:

* ``cond_gap_{low,mid,high}``: how much worse the loss gets (in %) when each image is given
  another image's embedding instead of its own, for timesteps in the low / mid / high third
  of the noise schedule. 0 means the condition is ignored; the probe of the old design
  measured 0-4 % at every noise level after its whole training.
* ``monitor_top1`` / ``monitor_median_rank``: the one-step prediction of the clean image at
  a noisy timestep (alpha_bar ~ 0.1, where x_t hardly shows the image), re-embedded by the
  stage-1 encoder and searched among the embeddings of all training images. Beside it,
  ``monitor_top1_shuffled`` is the same with the wrong embeddings: what x_t alone gives away.

It measures the weights being trained, not their EMA that is exported: it shows whether the
network is learning, while the exported generator lags by about 1 / (1 - train.ema_decay)
steps; ``eval-generator`` measures the exported one.

A generator whose gap stays under ``WARN_GAP`` % past a quarter of training (and past
``WARN_AFTER`` steps) gets one warning in the log.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from gensis.augment import eval_transform
from gensis.generator.sampling import predict_x0, regression_target

log = logging.getLogger("gensis.generator")

BINS = ("low", "mid", "high")
WARN_GAP = 5.0  # the old design: 0-4 %; the new one: > 20 % within 1,200 demo steps
WARN_AFTER = 200
MIN_HELD_OUT = 8  # fewer held-out images give figures too noisy to read


class ConditioningMonitor:
    def __init__(
        self,
        x0: torch.Tensor,
        emb: torch.Tensor,
        source_index: torch.Tensor,
        all_emb: torch.Tensor,
        scheduler,
        *,
        encoder=None,
        mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
        std: tuple[float, float, float] = (0.5, 0.5, 0.5),
        seed: int = 0,
    ) -> None:
        """x0: held-out targets in [-1, 1] (or latents), emb: their embeddings, source_index:
        their rows in ``all_emb`` (every training image's embedding, for retrieval);
        ``encoder=None`` (latent space) reports the loss gap only."""
        n = x0.shape[0]
        if n < 2:
            raise ValueError("the conditioning monitor needs at least 2 held-out images")
        g = torch.Generator().manual_seed(seed + 7919)
        self.x0, self.emb = x0, emb
        self.shuffled = emb.roll(1, dims=0)  # every image gets another's embedding
        self.source_index, self.all_emb = source_index, F.normalize(all_emb.float(), dim=-1)
        self.scheduler, self.encoder, self.mean, self.std = scheduler, encoder, mean, std
        T = scheduler.config.num_train_timesteps
        self.noise = torch.randn(x0.shape, generator=g).to(x0)
        edges = [round(T * i / 3) for i in range(4)]
        self.t = {
            name: torch.randint(edges[i], edges[i + 1], (n,), generator=g).to(x0.device) for i, name in enumerate(BINS)
        }
        ac = scheduler.alphas_cumprod
        t_ret = int((ac - 0.1).abs().argmin())
        self.t_retrieval = torch.full((n,), t_ret, device=x0.device)
        self.no_drop = torch.zeros(n, dtype=torch.bool, device=x0.device)
        self.warned = False

    @torch.no_grad()
    def measure(self, unet) -> dict[str, float]:
        was_training = unet.training
        unet.eval()
        try:
            out: dict[str, float] = {}
            for name, t in self.t.items():
                x_t = self.scheduler.add_noise(self.x0, self.noise, t)
                target = regression_target(self.scheduler, self.x0, self.noise, t)
                true = F.mse_loss(unet(x_t, t, self.emb, drop=self.no_drop).float(), target.float())
                wrong = F.mse_loss(unet(x_t, t, self.shuffled, drop=self.no_drop).float(), target.float())
                out[f"cond_gap_{name}"] = round(float(100 * (wrong - true) / wrong.clamp_min(1e-12)), 2)
            if self.encoder is not None:
                for suffix, emb in (("", self.emb), ("_shuffled", self.shuffled)):
                    ranks = self._ranks(unet, emb)
                    out[f"monitor_top1{suffix}"] = round(float((ranks == 0).float().mean() * 100), 2)
                    if not suffix:
                        out["monitor_median_rank"] = int(ranks.float().median()) + 1
        finally:
            unet.train(was_training)
        return out

    def _ranks(self, unet, emb: torch.Tensor) -> torch.Tensor:
        t = self.t_retrieval
        x_t = self.scheduler.add_noise(self.x0, self.noise, t)
        x0_hat = predict_x0(self.scheduler, x_t, t, unet(x_t, t, emb, drop=self.no_drop).float())
        u8 = ((x0_hat.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        param = next(self.encoder.parameters())
        feats = self.encoder(eval_transform(u8.to(param.device), self.mean, self.std)).float()
        sims = F.normalize(feats, dim=-1) @ self.all_emb.to(feats.device).T
        own = sims.gather(1, self.source_index.to(feats.device)[:, None])
        return (sims > own).sum(1).cpu()

    def check(self, metrics: dict[str, float], step: int, total_steps: int) -> None:
        """One warning when the condition still barely matters past a quarter of training."""
        if self.warned or step < max(total_steps / 4, WARN_AFTER):
            return
        gap = max(metrics.get(f"cond_gap_{b}", 0.0) for b in BINS)
        if gap < WARN_GAP:
            self.warned = True
            log.warning(
                "train-generator: at step %d a wrong embedding raises the loss by only %.1f %%: the "
                "generator is not following its condition (see cond_gap_* in metrics.jsonl)",
                step,
                gap,
            )


def holdout_split(n: int, requested: int, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, held-out indices): at most 10 % of the set and never below one batch
    of training images; no hold-out (monitor off) when fewer than ``MIN_HELD_OUT`` images
    can be spared."""
    k = min(requested, n // 10, n - batch_size)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 104729))
    if k < MIN_HELD_OUT:
        return torch.arange(n), perm[:0]
    held = perm[:k].sort().values
    keep = torch.ones(n, dtype=torch.bool)
    keep[held] = False
    return keep.nonzero().squeeze(1), held
