"""The SSL method a pretraining run trains, by name (``method=dino|simclr|mocov3``).

DINO (with Gen-SIS's disentanglement task when ``lambda_dis > 0``) trains on multi-crop
views; SimCLR and MoCo v3 (GenView's base methods) on two views. All three share the data,
augmentations, generated views, runtime and evaluation; the loop sees only the interface
described in :mod:`gensis.ssl.two_view`.
"""

from __future__ import annotations

from torch import nn

from gensis.config.schema import PretrainConfig
from gensis.models.backbones import Encoder


def build_method(cfg: PretrainConfig, encoder: Encoder, lambda_dis: float = 0.0) -> nn.Module:
    if cfg.method == "simclr":
        from gensis.ssl.simclr import SimCLR

        s = cfg.simclr
        return SimCLR(encoder, s.hidden_dim, s.out_dim, s.head_layers, s.temperature)
    if cfg.method == "mocov3":
        from gensis.ssl.moco_v3 import MoCoV3

        m = cfg.mocov3
        return MoCoV3(encoder, m.hidden_dim, m.out_dim, m.projector_layers, m.predictor_hidden_dim, m.temperature,
                      momentum=m.momentum)
    from gensis.ssl.dino import DINO

    return DINO(encoder, cfg.dino, lambda_dis, cfg.gen.dis_update_center)
