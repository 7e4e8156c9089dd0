"""anomalib's Gaussian smoothing of anomaly maps, as the two one-dimensional passes a Gaussian separates into.

PaDiM and PatchCore smooth their 256 x 256 maps with anomalib's `GaussianBlur2d` at sigma 4: a 33 x 33 kernel
applied as one dense convolution, 1,089 multiply-adds per pixel. It took 19 ms of PaDiM's 54 ms at batch 1,
almost as long as the backbone. A Gaussian kernel is the outer product of its row and column profiles, so the
same smoothing is a 33 x 1 pass followed by a 1 x 33 pass, 66 multiply-adds per pixel, with the same reflected
border; the maps agree to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from anomalib.models.components.filters import GaussianBlur2d
from torch import nn


class SeparableGaussianBlur(GaussianBlur2d):
    def forward(self, input_tensor: torch.Tensor) -> torch.Tensor:
        """anomalib's `same`-padded blur: pad as it pads, then convolve with the column and the row profile."""
        kernel = self.kernel[:1, 0]  # (1, h, w): the channels share one normalised kernel
        column = kernel.sum(dim=2).reshape(1, 1, self.height, 1).expand(self.channels, -1, -1, -1)
        row = kernel.sum(dim=1).reshape(1, 1, 1, self.width).expand(self.channels, -1, -1, -1)
        padded = F.pad(input_tensor, self.padding_shape, mode=self.border_type)
        return F.conv2d(F.conv2d(padded, column, groups=self.channels), row, groups=self.channels)


def separate_blurs(module: nn.Module) -> int:
    """Make every `same`-padded `GaussianBlur2d` inside `module` a `SeparableGaussianBlur`; how many there were."""
    count = 0
    for blur in module.modules():
        if type(blur) is GaussianBlur2d and blur.padding == "same":
            blur.__class__ = SeparableGaussianBlur  # a forward override only: the kernel buffer stays the module's
            count += 1
    return count
