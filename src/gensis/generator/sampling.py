"""Noise schedulers, the sampling loop and the training loss of the stage-2 generator.

The model and the scheduler stay apart, the diffusers way: ``sample`` is an explicit loop
``set_timesteps -> (model, scheduler.step) per t`` rather than a pipeline, so gensis controls
the randomness and the guidance. Samplers: DDIM (Song et al. 2021, arXiv 2010.02502) and
DPM-Solver++ (Lu et al. 2022, arXiv 2211.01095), with classifier-free guidance (Ho & Salimans
2022, arXiv 2207.12598). The loss is the DDPM objective (Ho et al. 2020) with condition
dropout, as used by Gen-SIS (arXiv 2412.01672) for its embedding-conditioned generator, by
default with the velocity as target and min-SNR-gamma weights (Hang et al. 2023). Images live
in [-1, 1] inside the model; ``sample`` returns [0, 1].
"""

from __future__ import annotations

from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from torch import nn

from gensis.errors import ConfigError
from gensis.generator.unet import EmbeddingConditionedUNet
from gensis.runtime.distributed import unwrap

SchedulerName = Literal["ddim", "dpmsolver++", "ddpm"]
BetaSchedule = Literal["squaredcos_cap_v2", "linear"]
PredictionType = Literal["epsilon", "v_prediction"]
# A diffusers noise scheduler (DDPM, DDIM, DPM-Solver++), typed as loosely as diffusers does: its
# SchedulerMixin declares none of step/set_timesteps/add_noise, and types the config read here as a dict.
Scheduler = Any


def make_scheduler(
    name: SchedulerName,
    num_train_timesteps: int = 1000,
    beta_schedule: BetaSchedule = "squaredcos_cap_v2",
    prediction_type: PredictionType = "epsilon",
    clip: bool = True,
) -> Scheduler:
    """A diffusers scheduler from its name; nothing is downloaded.

    ``"ddpm"`` is for training (``add_noise``); ``"ddim"`` and ``"dpmsolver++"`` sample. Train
    and sample with the same ``num_train_timesteps``, ``beta_schedule`` and ``prediction_type``.
    ``clip`` keeps the predicted clean sample in [-1, 1]: right for pixels, wrong for latents.
    """
    if beta_schedule not in ("squaredcos_cap_v2", "linear"):
        raise ConfigError(f"beta_schedule must be 'squaredcos_cap_v2' or 'linear', got {beta_schedule!r}")
    if prediction_type not in ("epsilon", "v_prediction"):
        raise ConfigError(f"prediction_type must be 'epsilon' or 'v_prediction', got {prediction_type!r}")
    if num_train_timesteps < 2:
        raise ConfigError(f"num_train_timesteps must be >= 2, got {num_train_timesteps}")
    common = {
        "num_train_timesteps": num_train_timesteps,
        "beta_schedule": beta_schedule,
        "prediction_type": prediction_type,
    }
    if name == "ddpm":
        return DDPMScheduler(**common)
    if name == "ddim":
        # "trailing" starts at t = T-1 (pure noise) even with few steps (Lin et al. 2023,
        # arXiv 2305.08891); "leading" would start at T - T/steps, which the model never saw
        # as pure noise. x0 is clipped to the image range [-1, 1] at every step.
        return DDIMScheduler(**common, timestep_spacing="trailing", clip_sample=clip)
    if name == "dpmsolver++":
        return DPMSolverMultistepScheduler(
            **common,
            algorithm_type="dpmsolver++",
            solver_order=2,
            # With sample_max_value=1 dynamic thresholding clips x0 to [-1, 1], like DDIM.
            thresholding=clip,
            sample_max_value=1.0,
            # diffusers' advice for the cosine schedule: clip lambda(t) near t = T.
            lambda_min_clipped=-5.1 if beta_schedule == "squaredcos_cap_v2" else -float("inf"),
        )
    raise ConfigError(f"unknown scheduler {name!r}; choose 'ddim', 'dpmsolver++' or 'ddpm'")


def _draw_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


@torch.no_grad()
def sample(
    unet: EmbeddingConditionedUNet,
    scheduler: Scheduler,
    emb: torch.Tensor,
    *,
    steps: int = 50,
    guidance_scale: float = 1.0,
    generator: torch.Generator | None = None,
    shape: tuple[int, int, int] | None = None,
    eta: float = 0.0,
    to_image: bool = True,
) -> torch.Tensor:
    """Images in [0, 1], (B, C, H, W), one per embedding row of ``emb`` (B, D).

    ``to_image=False`` returns the final sample unclamped (latents, for a VAE to decode).

    The starting noise is drawn on ``generator``'s device (pass a CPU generator) and then
    moved, so a seed gives the same images on every device up to kernel rounding. The model
    runs in eval mode (restored afterwards). ``eta`` (DDIM only): 0 = deterministic DDIM,
    1 = DDPM-like ancestral noise, drawn with the same generator.
    """
    if steps < 1 or steps > scheduler.config.num_train_timesteps:
        raise ConfigError(f"steps must lie in [1, {scheduler.config.num_train_timesteps}], got {steps}")
    if guidance_scale < 0:
        raise ConfigError(f"guidance_scale must be >= 0, got {guidance_scale}")
    if not 0.0 <= eta <= 1.0:
        raise ConfigError(f"eta must lie in [0, 1], got {eta}")
    is_ddim = isinstance(scheduler, DDIMScheduler)
    if eta != 0 and not is_ddim:
        raise ConfigError("eta only applies to the DDIM scheduler")
    if emb.dim() == 1:
        emb = emb.unsqueeze(0)
    unet.conditioner.check_embedding(emb)
    param = next(unet.parameters())
    emb = emb.to(param.device)
    shape = shape or unet.sample_shape

    x = torch.randn((emb.shape[0], *shape), generator=generator, device=_draw_device(generator))
    x = x.to(device=param.device, dtype=param.dtype) * scheduler.init_noise_sigma
    scheduler.set_timesteps(steps, device=param.device)  # also resets multistep state
    step_kwargs: dict[str, object] = {"generator": generator}
    if is_ddim:
        step_kwargs["eta"] = eta

    was_training = unet.training
    unet.eval()
    try:
        for t in scheduler.timesteps:
            x_in = scheduler.scale_model_input(x, t)
            if guidance_scale != 1:
                eps = unet.forward_cfg(x_in, t, emb, guidance_scale)
            else:
                eps = unet(x_in, t, emb)
            x = scheduler.step(eps, t, x, **step_kwargs, return_dict=False)[0]
    finally:
        unet.train(was_training)
    if not to_image:
        return x
    return ((x.clamp(-1.0, 1.0) + 1.0) / 2.0).clamp(0.0, 1.0)


def min_snr_weights(scheduler: Scheduler, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample loss weights of min-SNR-gamma (Hang et al. 2023, arXiv 2303.09556).

    In terms of the x0 error every objective is ``w(t) ||x0 - x0_hat||^2``; min-SNR sets
    ``w = min(SNR, gamma)``, so the nearly clean steps (large SNR) stop dominating. Divided
    by what the chosen target already implies: SNR for epsilon, SNR + 1 for v.
    """
    ac = scheduler.alphas_cumprod.to(t.device)[t].float()
    snr = ac / (1 - ac)
    if scheduler.config.prediction_type == "v_prediction":
        return snr.clamp(max=gamma) / (snr + 1)
    return (gamma / snr).clamp(max=1.0)  # min(SNR, gamma) / SNR, finite as SNR -> 0


def predict_x0(scheduler: Scheduler, x_t: torch.Tensor, t: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The clean sample implied by one model output at ``t`` (per-sample ``t``, shape (B,))."""
    ac = scheduler.alphas_cumprod.to(x_t.device)[t].float().view(-1, 1, 1, 1)
    a, s = ac.sqrt(), (1 - ac).sqrt()
    if scheduler.config.prediction_type == "v_prediction":
        return a * x_t - s * out
    return (x_t - s * out) / a


def regression_target(scheduler: Scheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the model regresses: the noise (epsilon) or the velocity (v-prediction)."""
    if scheduler.config.prediction_type == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    if scheduler.config.prediction_type == "epsilon":
        return noise
    raise ConfigError(f"unsupported prediction_type {scheduler.config.prediction_type!r}")


def training_loss(
    unet: EmbeddingConditionedUNet | nn.Module,
    scheduler: Scheduler,
    x0: torch.Tensor,
    emb: torch.Tensor,
    generator: torch.Generator | None = None,
    rows: slice | None = None,
    min_snr_gamma: float = 0.0,
) -> torch.Tensor:
    """Mean squared error of the noise (or velocity) prediction; x0 in [-1, 1], emb (B, D).

    Timesteps are uniform over [0, T), the noise is Gaussian and the condition is dropped
    with probability ``p_uncond`` per sample (whatever the module mode, since this is the
    training objective); all drawn with ``generator`` on its device. Put the model in
    train() yourself for its dropout layers. With ``prediction_type="v_prediction"`` the
    target is the velocity (Salimans & Ho 2022) instead of the noise; ``min_snr_gamma > 0``
    weights each sample by :func:`min_snr_weights`.

    ``rows`` (data-parallel training): x0 and emb are the global batch and this process
    trains on ``rows`` of it. Timesteps, noise and dropout are still drawn for the whole
    batch, then sliced, so N processes see exactly the draws of one. ``unet`` may be DDP.
    """
    conditioner = cast(EmbeddingConditionedUNet, unwrap(unet)).conditioner  # unet may be DDP
    conditioner.check_embedding(emb)
    b = x0.shape[0]
    if emb.shape[0] != b:
        raise ConfigError(f"{b} images but {emb.shape[0]} embeddings")
    draw = _draw_device(generator) if generator is not None else x0.device
    n_steps = scheduler.config.num_train_timesteps
    t = torch.randint(0, n_steps, (b,), generator=generator, device=draw).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=draw, dtype=x0.dtype).to(x0.device)
    drop = conditioner.sample_drop(b, x0.device, generator)
    if rows is not None:
        x0, emb, t, noise, drop = x0[rows], emb[rows], t[rows], noise[rows], drop[rows]
    x_t = scheduler.add_noise(x0, noise, t)
    pred = unet(x_t, t, emb, drop=drop)
    target = regression_target(scheduler, x0, noise, t)
    if min_snr_gamma <= 0:
        return F.mse_loss(pred.float(), target.float())
    per_sample = (pred.float() - target.float()).square().mean(dim=tuple(range(1, pred.dim())))
    return (per_sample * min_snr_weights(scheduler, t, min_snr_gamma)).mean()
