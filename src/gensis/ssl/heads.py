"""Projection heads.

``DINOHead`` follows Caron et al. 2021 (arXiv 2104.14294), ``vision_transformer.DINOHead`` of
facebookresearch/dino: an MLP to a bottleneck, L2 normalization, and a weight-normalized
linear layer to ``out_dim`` prototypes whose norm is frozen at 1 (``norm_last_layer``).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


class DINOHead(nn.Module):
    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        n_layers: int = 3,
        batch_norm: bool = False,
        norm_last_layer: bool = True,
    ) -> None:
        super().__init__()
        n_layers = max(n_layers, 1)
        if n_layers == 1:
            self.mlp: nn.Module = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers: list[nn.Module] = []
            dims = [in_dim] + [hidden_dim] * (n_layers - 1)
            for d_in, d_out in itertools.pairwise(dims):
                layers.append(nn.Linear(d_in, d_out))
                if batch_norm:
                    layers.append(nn.BatchNorm1d(d_out))
                layers.append(nn.GELU())
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        self.apply(_init_linear)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        # weight = g * v / |v| with g fixed to 1: the prototypes stay on the unit sphere.
        g = self.last_layer.parametrizations.weight.original0
        g.data.fill_(1.0)
        if norm_last_layer:
            g.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mlp(x)
        x = F.normalize(x, dim=-1, p=2)
        return self.last_layer(x)

    def cancel_last_layer_gradients(self) -> None:
        """DINO freezes the prototypes during the first epoch(s) for stability."""
        for p in self.last_layer.parameters():
            p.grad = None


def _init_linear(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
