"""AOD-Net (Li et al., ICCV 2017): five convolutions estimate K(x); J = ReLU(K * I - K + 1).

Layer names ``e_conv1..5`` follow the public PyTorch port (MayankSingal/PyTorch-Image-Dehazing),
whose ``dehazer.pth`` loads as is.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from vat.models.restorers.base import Restorer


class AODNet(Restorer):
    """AOD-Net (Li et al., ICCV 2017): J = ReLU(K(I) * I - K(I) + b), b = 1.

    Layer names and wiring follow the public PyTorch port: conv2 takes conv1's output,
    conv3 takes cat(conv1, conv2), conv4 cat(conv2, conv3), conv5 cat(conv1..conv4).
    """

    receptive_radius = 7  # 0 + 1 + 2 + 3 + 1 along the longest path (conv1..conv5)

    def __init__(self, b: float = 1.0) -> None:
        super().__init__()
        self.b = float(b)
        self.e_conv1 = nn.Conv2d(3, 3, 1, 1, 0)  # weight (3, 3, 1, 1)
        self.e_conv2 = nn.Conv2d(3, 3, 3, 1, 1)  # (3, 3, 3, 3)
        self.e_conv3 = nn.Conv2d(6, 3, 5, 1, 2)  # (3, 6, 5, 5)
        self.e_conv4 = nn.Conv2d(6, 3, 7, 1, 3)  # (3, 6, 7, 7)
        self.e_conv5 = nn.Conv2d(12, 3, 3, 1, 1)  # (3, 12, 3, 3)

    def estimate_k(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.relu(self.e_conv1(x))  # (B, 3, H, W)
        x2 = F.relu(self.e_conv2(x1))
        x3 = F.relu(self.e_conv3(torch.cat((x1, x2), 1)))
        x4 = F.relu(self.e_conv4(torch.cat((x2, x3), 1)))
        return F.relu(self.e_conv5(torch.cat((x1, x2, x3, x4), 1)))  # K(x), (B, 3, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.estimate_k(x)
        # ReLU as published; the upper clamp keeps the [0, 1] contract.
        return (k * x - k + self.b).clamp(0.0, 1.0)

    def init_weights(self, generator: torch.Generator | None = None) -> AODNet:
        """N(0, 0.02) conv weights and zero biases, as the public port's training script, except
        the last bias: 1 makes K(x) start near 1, so J = K (I - 1) + b starts near the input I
        itself (b = 1) (the public init starts at J = b, a white image, and a short training on few
        images ends below the hazy input's PSNR)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02, generator=generator)
                nn.init.zeros_(m.bias)
        nn.init.ones_(self.e_conv5.bias)  # K ~ 1: J ~ I - 1 + b = I
        return self

    @staticmethod
    def remap_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # Other ports name the layers conv1..conv5.
        return {re.sub(r"^conv([1-5])\.", r"e_conv\1.", k): v for k, v in state.items()}
