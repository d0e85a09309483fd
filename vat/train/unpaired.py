"""The CycleGAN-style unpaired baseline (Zhu et al., ICCV 2017), built on VaT's own translator.

The baseline of the paper's Table 1 row "CycleGAN": the same gate G and transformation
modules T_A (I_F -> clean-like) and T_B (clean -> I_F-like) as VaT, of the same size, trained
with cycle consistency and adversarial losses instead of D's loss on pseudo-labels. So the
comparison with VaT isolates the objective: no pseudo-label and no detector gradient here.

Losses (CycleGAN's least-squares GAN form, its Eq. 3 and Sec. 4 "Training details")::

    L_G = adv_weight * [(C_HQ(T_A(I_F)) - 1)^2 + (C_F(T_B(I_HQ)) - 1)^2]
        + cycle_weight * L_cyc                         (Eq. 6 of VaT, CycleGAN's lambda = 10)
        + identity_weight * [|T_A(I_HQ) - I_HQ|_1 + |T_B(I_F) - I_F|_1]
    L_C = 0.5 * [(C(real) - 1)^2 + C(fake)^2]          for each critic, fakes from a history pool

with C_HQ, C_F 70x70-style PatchGAN critics (:class:`PatchCritic`; instance norm, leaky ReLU)
and CycleGAN's pool of the last ``pool`` fakes (half the time an older fake is shown).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vat.train.results import optimizer_groups


class PatchCritic(nn.Module):
    """PatchGAN critic: ``layers`` stride-2 4x4 convs (width doubling, capped at 8x), a stride-1
    conv, and a 1-channel map of real/fake scores, one per overlapping patch."""

    def __init__(self, width: int = 64, layers: int = 3) -> None:
        super().__init__()
        if width < 1 or layers < 1:
            raise ValueError("PatchCritic: width and layers must be >= 1")
        mods: list[nn.Module] = [nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        c = width
        for i in range(1, layers + 1):
            n = width * min(2**i, 8)
            stride = 2 if i < layers else 1
            mods += [
                nn.Conv2d(c, n, 4, stride, 1, bias=False),
                nn.InstanceNorm2d(n, affine=True),
                nn.LeakyReLU(0.2, True),
            ]
            c = n
        mods.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)
        for m in self.modules():  # CycleGAN's init: N(0, 0.02)
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x * 2 - 1)  # images in [0, 1] -> [-1, 1], as CycleGAN's


class HistoryPool:
    """CycleGAN's image buffer: each fake goes in; half the time the critic sees an older one."""

    def __init__(self, size: int, generator: torch.Generator) -> None:
        self.size = size
        self.images: list[Tensor] = []
        self.gen = generator

    def __call__(self, fakes: Tensor) -> Tensor:
        if self.size == 0:
            return fakes
        out = []
        for img in fakes.detach():
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif torch.rand((), generator=self.gen).item() < 0.5:
                j = int(torch.randint(len(self.images), (), generator=self.gen))
                out.append(self.images[j].clone())
                self.images[j] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)


def _ls(scores: Tensor, target: float) -> Tensor:
    return F.mse_loss(scores.float(), torch.full_like(scores.float(), target))


def generator_loss(
    model,
    critic_hq: nn.Module,
    critic_f: nn.Module,
    fused: Tensor,
    hq: Tensor,
    cycle_weight: float,
    adv_weight: float,
    identity_weight: float,
) -> dict[str, Tensor]:
    """The translator's loss; ``model`` has ``t_a`` and ``t_b``. Returns the terms and ``total``,
    with the fakes (``fake_hq`` = T_A(I_F), ``fake_f`` = T_B(I_HQ)) for the critics' step."""
    fake_hq, fake_f = model.t_a(fused), model.t_b(hq)
    cycle = F.l1_loss(model.t_b(fake_hq), fused) + F.l1_loss(model.t_a(fake_f), hq)
    adv = _ls(critic_hq(fake_hq), 1.0) + _ls(critic_f(fake_f), 1.0)
    identity = fused.new_zeros(())
    if identity_weight > 0:
        identity = F.l1_loss(model.t_a(hq), hq) + F.l1_loss(model.t_b(fused), fused)
    total = cycle_weight * cycle + adv_weight * adv + identity_weight * identity
    return {
        "total": total,
        "cycle": cycle,
        "adv": adv,
        "identity": identity,
        "fake_hq": fake_hq,
        "fake_f": fake_f,
    }


def critic_loss(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """LSGAN critic loss, halved as CycleGAN's (the critic learns slower than the generator)."""
    return 0.5 * (_ls(critic(real.detach()), 1.0) + _ls(critic(fake.detach()), 0.0))


class CycleGANObjective:
    """The baseline's step for :func:`vat.train.loop.fit`: the translator's loss
    (:func:`generator_loss`) and Adam step, then the critics' (:func:`critic_loss`), each
    critic shown fakes from its :class:`HistoryPool`. Single process, fp32."""

    title = "Unpaired"  # the sample pictures name the baseline, not VaT
    bf16_val = False

    def __init__(self, model, params, train_params, seed: int, device: torch.device) -> None:
        from vat.seeding import item_seed
        from vat.train import distributed as dist

        if dist.world() > 1:
            raise ValueError("unpaired: the CycleGAN-style baseline trains in one process (no torchrun)")
        self.model, self.params, self.device = model, params, device
        self.label = f"unpaired {train_params.translator}"
        self.critics = nn.ModuleDict(
            {
                "hq": PatchCritic(params.critic_width, params.critic_layers),
                "fused": PatchCritic(params.critic_width, params.critic_layers),
            }
        ).to(device)
        groups = optimizer_groups(model, params.lr, train_params.gate_lr)  # G as fast as in VaT
        self.opt_g = torch.optim.Adam(groups, lr=params.lr, betas=(0.5, 0.999))
        self.opt_c = torch.optim.Adam(self.critics.parameters(), lr=params.lr, betas=(0.5, 0.999))
        self.gen = torch.Generator().manual_seed(item_seed(seed, "unpaired-pool"))
        self.pools = {"hq": HistoryPool(params.pool, self.gen), "fused": HistoryPool(params.pool, self.gen)}
        self._step: dict[str, Tensor] = {}

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model, "critics": self.critics}

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt_g, self.opt_c]

    def start(self) -> None:
        self.model.train()
        self.critics.train()

    def forward(self, batch, step: int) -> dict[str, Tensor]:
        from vat.train.graph import to_float

        p = self.params
        lq, r, hq = (to_float(x, self.device) for x in (batch.lq, batch.restored, batch.hq))
        fused, _ = self.model.fuse(lq, r)
        self.critics.requires_grad_(False)
        g = generator_loss(self.model, self.critics["hq"], self.critics["fused"], fused, hq, p.cycle_weight,
                           p.adv_weight, p.identity_weight)  # fmt: skip
        self._step = {"g": g, "fused": fused, "hq": hq}
        return {k: g[k].detach() for k in ("total", "cycle", "adv", "identity")}

    def backward(self) -> dict[str, float]:
        g, fused, hq = self._step["g"], self._step["fused"], self._step["hq"]
        self.opt_g.zero_grad(set_to_none=True)
        g["total"].backward()
        self.opt_g.step()
        self.critics.requires_grad_(True)
        c = critic_loss(self.critics["hq"], hq, self.pools["hq"](g["fake_hq"])) + critic_loss(
            self.critics["fused"], fused, self.pools["fused"](g["fake_f"])
        )
        self.opt_c.zero_grad(set_to_none=True)
        c.backward()
        self.opt_c.step()
        self._step = {}
        return {"critic": float(c.detach())}

    def extra_state(self) -> dict:
        return {
            "pools": {k: list(p.images) for k, p in self.pools.items()},
            "generator": self.gen.get_state(),
        }

    def load_extra_state(self, state: dict) -> None:
        for k, images in state["pools"].items():
            self.pools[k].images = list(images)
        self.gen.set_state(state["generator"])

    def metrics(self) -> dict:
        from dataclasses import asdict

        from vat.models.translator import parameter_count

        return {
            "objective": "cyclegan (cycle + least-squares adversarial), no pseudo-labels",
            "params_critics": parameter_count(self.critics),
            "unpaired": asdict(self.params),
        }
