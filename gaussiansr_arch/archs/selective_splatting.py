"""Selective Gaussian Splatting: a learnable Gaussian bank and a per-pixel kernel classifier."""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class KernelParams:
    """Per-LR-pixel Gaussian parameters, all bounded so that no input can produce NaN.

    Attributes:
        sigma (Tensor): [B,2,h,w] (sigma_y, sigma_x) in LR pixels, in [sigma_min, sigma_max].
        rho (Tensor): [B,1,h,w] correlation, |rho| <= rho_max < 1.
        opacity (Tensor): [B,1,h,w] in (0, 1).
        choice (Tensor | None): [B,h,w] bank index chosen per pixel (eval only).
    """

    sigma: torch.Tensor
    rho: torch.Tensor
    opacity: torch.Tensor
    choice: torch.Tensor | None = None


def _grid_side_lengths(num_kernels: int) -> tuple[int, int]:
    """Rows and columns of the most square grid with at least ``num_kernels`` cells."""
    rows = max(1, math.isqrt(num_kernels))
    cols = math.ceil(num_kernels / rows)
    return rows, cols


class GaussianBank(nn.Module):
    """A bank of learnable 2D Gaussian kernels (paper Fig. 3).

    Raw parameters are unconstrained; ``kernels()`` maps them into bounded ranges:
    sigma = sigma_min + (sigma_max - sigma_min) * sigmoid(raw) (the paper activates sigma with
    a sigmoid), rho = rho_max * tanh(raw), opacity = sigmoid(raw).
    Initialisation: (sigma_y, sigma_x) on a grid over the sigma range (10 x 10 for 100
    kernels), rho 0, opacity sigmoid(1).

    Args:
        num_kernels (int): Bank size. Default: 100.
        sigma_range (tuple[float, float]): Allowed sigma in LR pixels. Default: (0.1, 0.7).
        rho_max (float): Bound on |rho|, < 1 so the covariance stays invertible. Default: 0.95.
    """

    def __init__(self, num_kernels: int = 100, sigma_range: tuple[float, float] = (0.1, 0.7), rho_max: float = 0.95):
        super().__init__()
        sigma_min, sigma_max = float(sigma_range[0]), float(sigma_range[1])
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f'sigma_range must satisfy 0 < min < max, got {sigma_range}')
        if not 0 < rho_max < 1:
            raise ValueError(f'rho_max must be in (0, 1), got {rho_max}')
        if num_kernels < 1:
            raise ValueError(f'num_kernels must be >= 1, got {num_kernels}')
        self.num_kernels = num_kernels
        self.sigma_min, self.sigma_max, self.rho_max = sigma_min, sigma_max, rho_max

        rows, cols = _grid_side_lengths(num_kernels)
        # Interior grid points in sigmoid space: the end points of the range map to +-inf.
        ys = torch.linspace(0, 1, rows + 2)[1:-1]
        xs = torch.linspace(0, 1, cols + 2)[1:-1]
        grid = torch.stack(torch.meshgrid(ys, xs, indexing='ij'), dim=-1).reshape(-1, 2)[:num_kernels]
        self.sigma_raw = nn.Parameter(torch.logit(grid))  # [N,2] (sigma_y, sigma_x)
        self.rho_raw = nn.Parameter(torch.zeros(num_kernels))
        self.opacity_raw = nn.Parameter(torch.ones(num_kernels))

    def kernels(self) -> torch.Tensor:
        """Bounded parameters of every kernel: [N,4] = (sigma_y, sigma_x, rho, opacity)."""
        sigma = self.sigma_min + (self.sigma_max - self.sigma_min) * torch.sigmoid(self.sigma_raw)
        rho = self.rho_max * torch.tanh(self.rho_raw)
        opacity = torch.sigmoid(self.opacity_raw)
        return torch.cat([sigma, rho[:, None], opacity[:, None]], dim=1)


class SelectiveGaussianSplatting(nn.Module):
    """Assigns every LR pixel one Gaussian of the bank from its features (paper Sec. 3.3).

    A 3x3 conv classifier gives ``num_kernels`` logits per pixel. Training draws a soft
    Gumbel-softmax mixture (tau = 1) of the bank's kernel parameters so the choice is
    differentiable; eval takes the argmax: deterministic and independent of the rest of
    the batch (the authors' code samples noise at eval and averages kernels over the batch).

    Args:
        in_channels (int): Feature channels of the encoder. Default: 64.
        num_kernels (int): Bank size. Default: 100.
        sigma_range (tuple[float, float]): Sigma bounds in LR pixels. Default: (0.1, 0.7).
        tau (float): Gumbel-softmax temperature. Default: 1.0.
    """

    def __init__(
        self,
        in_channels: int = 64,
        num_kernels: int = 100,
        sigma_range: tuple[float, float] = (0.1, 0.7),
        tau: float = 1.0,
    ):
        super().__init__()
        self.tau = tau
        self.bank = GaussianBank(num_kernels, sigma_range)
        self.classifier = nn.Conv2d(in_channels, num_kernels, 3, 1, 1)

    def forward(self, feat: torch.Tensor) -> KernelParams:
        """Per-pixel kernel parameters.

        Args:
            feat (Tensor): [B,C,h,w] encoder features.

        Returns:
            KernelParams: sigma [B,2,h,w], rho [B,1,h,w], opacity [B,1,h,w].
        """
        logits = self.classifier(feat)  # [B,N,h,w]
        bank = self.bank.kernels()  # [N,4]
        if self.training:
            weights = F.gumbel_softmax(logits, tau=self.tau, hard=False, dim=1)
            params = torch.einsum('bnhw,nk->bkhw', weights, bank)
            choice = None
        else:
            choice = logits.argmax(dim=1)  # [B,h,w]
            params = bank[choice].permute(0, 3, 1, 2)
        return KernelParams(sigma=params[:, 0:2], rho=params[:, 2:3], opacity=params[:, 3:4], choice=choice)
