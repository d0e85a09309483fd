"""Speed and memory measurements (``vat bench``): numbers go under ``reports/bench/``, never into tests."""

from __future__ import annotations

import os
import platform


def machine() -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": gpu,
    }


def torch_name(device) -> str:
    import torch

    return torch.cuda.get_device_name(device).replace(" ", "-").replace("/", "-")
