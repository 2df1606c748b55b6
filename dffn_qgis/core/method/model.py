"""The DFFN network: abundance module (AEM), endmember module (EEM), reconstruction (RE), loss."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

_COS_LIMIT = 1.0 - 1e-7   # arccos has an infinite gradient at 1


def _conv_block(c_in: int, c_out: int, kernel: int, padding: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride=1, padding=padding),
                         nn.BatchNorm2d(c_out), nn.ReLU())


_TINY = torch.finfo(torch.float32).tiny     # the smallest normal float32


class _NormalSigmoidFunction(torch.autograd.Function):
    """The logistic function, with what float32 cannot hold as a normal number (below 1.2e-38, in
    the output and in the gradient) set to zero."""

    @staticmethod
    def forward(ctx, x):
        s = torch.sigmoid(x)
        s = s.masked_fill_(s < _TINY, 0.0) if s.dtype == torch.float32 else s
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        g = torch.ops.aten.sigmoid_backward(grad, s)
        return g.masked_fill_(g.abs() < _TINY, 0.0) if g.dtype == torch.float32 else g


class _Sigmoid(nn.Module):
    """The endmember module's sigmoid without subnormal numbers. Its units saturate as training goes
    on (on a 425-band scene a sixth of the first layer's outputs were below -60 by epoch 250), and
    the sigmoid's gradient there, s (1 - s) g, falls below float32's normal range; on x86 every
    multiplication with a subnormal number takes a slow microcode path, and the first layer's
    backward product (L x 100 by 100 x n) with such a gradient took ten times its normal time.
    Values below 1.2e-38 are set to zero instead (what a CPU in flush-to-zero mode does): no
    effect on anything a float32 sum can see."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _NormalSigmoidFunction.apply(x)


class DFFN(nn.Module):
    """Conv blocks L->128->64->P (abundances) ->L (first reconstruction); FC N->100->30->P (endmembers).

    ``n_pixels`` is the EEM's input size: the number of valid pixels of the training image.
    ``projection`` (K x L with orthonormal rows, optional): the first convolution works on the K
    coordinates ``projection @ x`` of each enhanced pixel, with its weights (still c_out x L x k x k)
    mapped onto them, ``W @ projection.T``. That is the published layer applied to
    ``projection.T @ projection @ x``: exactly the published layer wherever the image lies in the
    projection's span, at K / L of its multiplications (``input_components``, docs/METHOD.md). It is a
    fixed buffer, saved with the state and applied wherever the network runs (tiles included).
    """

    def __init__(self, n_bands: int, n_endmembers: int, n_pixels: int, kernel: int = 5, padding: int = 2,
                 projection: Optional[torch.Tensor] = None):
        super().__init__()
        if projection is not None:
            if projection.ndim != 2 or projection.shape[1] != n_bands:
                raise ValueError(f"projection must be K x {n_bands} (got {tuple(projection.shape)})")
            self.register_buffer("input_projection", projection.detach().float().clone())
        else:
            self.input_projection = None
        self.aem = nn.Sequential(_conv_block(n_bands, 128, kernel, padding),
                                 _conv_block(128, 64, kernel, padding),
                                 _conv_block(64, n_endmembers, kernel, padding))
        self.decoder = _conv_block(n_endmembers, n_bands, kernel, padding)
        self.eem = nn.Sequential(nn.Linear(n_pixels, 100), _Sigmoid(),
                                 nn.Linear(100, 30), _Sigmoid(),
                                 nn.Linear(30, n_endmembers), _Sigmoid())

    def abundance_maps(self, x: torch.Tensor) -> torch.Tensor:
        """B x P x H x W abundance maps of B x L x H x W enhanced image(s)."""
        if self.input_projection is not None:
            basis = self.input_projection.to(x.dtype)
            conv = self.aem[0][0]
            weight = torch.einsum("olij,kl->okij", conv.weight.to(x.dtype), basis)
            first = nn.functional.conv2d(torch.einsum("kl,blhw->bkhw", basis, x), weight, conv.bias,
                                         conv.stride, conv.padding)
            features = self.aem[1](self.aem[0][1:](first))     # B x 64 x H x W
        else:
            features = self.aem[:2](x)                         # B x 64 x H x W
        # The abundance layer in float32 even under bfloat16 autocast: bfloat16's 8-bit
        # mantissa in A puts a floor under the reconstruction angle (docs/METHOD.md, "Precision").
        with torch.autocast(x.device.type, enabled=False):
            return self.aem[2](features.float())

    def forward(self, x: torch.Tensor, valid: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x``: B x L x H x W enhanced image(s) (B = 1: the whole image; more: training windows);
        ``valid``: flat indices of the valid pixels in (image, row, column) order, or None.

        Returns abundances A (P x n), first reconstruction Yhat1 (L x n) and endmembers E (L x P),
        with n the valid pixels. The linear reconstruction Yhat2 = E @ A is never formed: the loss
        takes its angles from E and A (:func:`dffn_loss`).
        """
        abundance_map = self.abundance_maps(x)                 # B x P x H x W
        with torch.autocast(x.device.type, enabled=False):     # float32, as the abundances
            first = self.decoder(abundance_map)                # B x L x H x W
        A = _pixels_as_columns(abundance_map)                  # P x (B H W)
        Y1 = _pixels_as_columns(first)                         # L x (B H W)
        if valid is not None:
            A, Y1 = A[:, valid], Y1[:, valid]
        E = self.eem(Y1.float())                               # L x P
        return A, Y1, E


def _pixels_as_columns(maps: torch.Tensor) -> torch.Tensor:
    """B x C x H x W -> C x (B H W), pixels in (image, row, column) order."""
    if maps.shape[0] == 1:
        return maps.flatten(2)[0]
    return maps.transpose(0, 1).flatten(1)


def spectral_angle(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Per-pixel angle (radians) between the columns of two L x n matrices."""
    cos = nn.functional.cosine_similarity(x, z, dim=0, eps=1e-8)
    return torch.arccos(cos.clamp(-_COS_LIMIT, _COS_LIMIT))


def angle_to_mixture(X: torch.Tensor, E: torch.Tensor, A: torch.Tensor,
                     x_norm: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-pixel angle (radians) between the columns of ``X`` (L x n) and those of ``E @ A`` (E: L x P,
    A: P x n), without forming the L x n product: the dot products are ``(X^T E) A`` and the squared
    norms ``a^T (E^T E) a``, so the cost is n L P plus n P^2 instead of several passes over L x n.
    ``x_norm``: the columns' norms of ``X`` when known (the training target's do not change).

    The same angles as :func:`spectral_angle` of ``X`` and ``E @ A`` (to float32 rounding; tested),
    with the same clamp of the cosine.
    """
    At = A.T                                                   # n x P
    dots = ((X.T @ E) * At).sum(1)
    mixture_sq = ((At @ (E.T @ E)) * At).sum(1)
    if x_norm is None:
        x_norm = torch.linalg.vector_norm(X, dim=0)
    cos = dots / (x_norm.clamp_min(1e-8) * mixture_sq.clamp_min(1e-16).sqrt())
    return torch.arccos(cos.clamp(-_COS_LIMIT, _COS_LIMIT))


def dffn_loss(Y: torch.Tensor, A: torch.Tensor, Y1: torch.Tensor, E: torch.Tensor,
              a: float = 1.0, b: float = 0.01, c: float = 0.001,
              y_norm: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``a * SAD(Y, Yhat2) + b * (ANC + ASC) + c * SAD(Yhat1, Yhat2)`` on the valid pixels, with
    ``Yhat2 = E @ A`` (:func:`angle_to_mixture`). ``y_norm``: the columns' norms of ``Y``, if known."""
    A, E = A.float(), E.float()          # under bfloat16 autocast the endmember module's E is bfloat16
    anc = torch.relu(-A).mean()
    asc = ((A.sum(0) - 1.0) ** 2).mean()
    return (a * angle_to_mixture(Y, E, A, y_norm).mean() + b * (anc + asc)
            + c * angle_to_mixture(Y1.float(), E, A).mean())
