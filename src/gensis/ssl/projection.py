"""MLP projection and prediction heads for contrastive methods.

``build_mlp`` is the one builder; the named heads fix the layouts of the papers:

* SimCLR (Chen et al. 2020, arXiv 2002.05709; lightly ``SimCLRProjectionHead``):
  Linear-BN-ReLU then Linear-BN, 2048 -> 128 by default.
* MoCo v3 (Chen, Xie, He 2021, arXiv 2104.02057, facebookresearch/moco-v3 ``_build_mlp``):
  bias-free Linear layers with BN and ReLU; the projector ends in a non-affine BN, the
  predictor (2 layers) ends in a plain Linear.

A Linear followed by BN gets no bias (BN's shift makes it redundant).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import nn


def build_mlp(
    dims: Sequence[int],
    batch_norm: bool = True,
    last_bn: bool = True,
    last_bn_affine: bool = True,
    last_bias: bool | None = None,
) -> nn.Sequential:
    """MLP through ``dims`` (in, hidden..., out): hidden layers Linear[-BN]-ReLU, last Linear[-BN].

    ``last_bias=None`` gives the last Linear a bias exactly when no BN follows it.
    """
    if len(dims) < 2:
        raise ValueError(f"an MLP needs at least input and output dims, got {list(dims)}")
    layers: list[nn.Module] = []
    for d_in, d_out in itertools.pairwise(dims[:-1]):
        layers.append(nn.Linear(d_in, d_out, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(d_out))
        layers.append(nn.ReLU(inplace=True))
    final_bn = batch_norm and last_bn
    bias = (not final_bn) if last_bias is None else last_bias
    layers.append(nn.Linear(dims[-2], dims[-1], bias=bias))
    if final_bn:
        layers.append(nn.BatchNorm1d(dims[-1], affine=last_bn_affine))
    return nn.Sequential(*layers)


def simclr_projection_head(
    in_dim: int, hidden_dim: int = 2048, out_dim: int = 128, num_layers: int = 2, batch_norm: bool = True
) -> nn.Sequential:
    """SimCLR head; ``num_layers=2`` is SimCLR v1, 3 is SimCLR v2."""
    return build_mlp([in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim], batch_norm=batch_norm)


def mocov3_projector(in_dim: int, hidden_dim: int = 4096, out_dim: int = 256, num_layers: int = 3) -> nn.Sequential:
    """MoCo v3 projector: 3 layers in the paper (the reference ResNet code uses 2)."""
    dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
    return build_mlp(dims, last_bn=True, last_bn_affine=False, last_bias=False)


def mocov3_predictor(dim: int = 256, hidden_dim: int = 4096, num_layers: int = 2) -> nn.Sequential:
    """MoCo v3 predictor: ``dim -> hidden -> dim`` without a final BN or bias."""
    dims = [dim] + [hidden_dim] * (num_layers - 1) + [dim]
    return build_mlp(dims, last_bn=False, last_bias=False)
