"""Speed options of a training step, in one object: command-line flags, not params.

None of them changes results beyond bf16 rounding (each has a CPU equality test), so they
are options of ``vat train`` (and ablate, study, classify's trainings), of the benchmarks
and of the device scripts, never keys of ``params.yaml``: changing one does not invalidate
DVC's cache. Adding an option is one field here (its flag and help in the field's
metadata, read by the CLI) and its use in :class:`vat.train.graph.TrainGraph`.

A field left ``None`` is decided for the device by :meth:`Speed.resolve`: on CUDA every
option is on; on a CPU channels_last and one_detector_pass are (the layout the CPU's
convolutions, depthwise ones above all, run fastest in: 1.2x the plain step of the CPU default,
``reports/bench/profile-cpu.md``), bf16 (slower than float32 on CPUs without AMX) and the
rest are off. The presets :data:`PLAIN`, :data:`FAST` and :data:`MEMORY` are explicit everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch


def _flag(flags: str, help: str) -> dict:
    return {"flags": flags, "help": help}


@dataclass(frozen=True)
class Speed:
    """How a training step runs (not what it computes)."""

    bf16: bool | None = field(default=None, metadata=_flag("--bf16/--no-bf16", "bfloat16 autocast"))
    channels_last: bool | None = field(
        default=None, metadata=_flag("--channels-last/--no-channels-last", "channels_last memory format")
    )
    fold_batchnorm: bool | None = field(
        default=None, metadata=_flag("--fold-batchnorm/--no-fold-batchnorm", "fold D's BatchNorms into convs")
    )
    one_detector_pass: bool | None = field(
        default=None,
        metadata=_flag("--one-detector-pass/--no-one-detector-pass", "the loss terms share one D forward"),
    )
    compile: bool = field(default=False, metadata=_flag("--compile", "torch.compile the transformer blocks"))
    compile_detector: bool = field(
        default=False,
        metadata=_flag("--compile-detector", "torch.compile the frozen D's layers"),
    )
    checkpoint: bool = field(
        default=False,
        metadata=_flag("--checkpoint", "recompute the transformer blocks in backward"),
    )
    checkpoint_detector: bool = field(
        default=False,
        metadata=_flag("--checkpoint-detector", "recompute D in backward"),
    )

    def resolve(self, device: torch.device | str) -> Speed:
        """Every ``None`` decided for ``device``: on for CUDA; on a CPU only CPU_ON."""
        cuda = torch.device(device).type == "cuda"
        unset = [f.name for f in fields(self) if getattr(self, f.name) is None]
        return replace(self, **{name: cuda or name in CPU_ON for name in unset})

    def __or__(self, other: Speed) -> Speed:
        """Both presets' options on (``FAST | MEMORY``)."""
        return Speed(**{f.name: getattr(self, f.name) or getattr(other, f.name) for f in fields(self)})

    def enabled(self) -> tuple[str, ...]:
        """The names of the options that are on."""
        return tuple(f.name for f in fields(self) if getattr(self, f.name))

    def to_dict(self) -> dict[str, bool | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def prepare_translator(self, model: torch.nn.Module) -> torch.nn.Module:
        """The translator laid out and compiled as the options say (in place, after its weights
        are loaded); D's options are applied by the training step (TrainGraph)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if self.compile:
            model.compile_blocks()
        return model


OPTIONS = tuple(f.name for f in fields(Speed))
CPU_ON = ("channels_last", "one_detector_pass")  # what an unset option means on a CPU
PLAIN = Speed(**dict.fromkeys(OPTIONS, False))  # everything off: the eager fp32 step
# The fast mode: bf16 + channels_last, D's BatchNorms folded, one D forward for the loss terms.
FAST = replace(PLAIN, bf16=True, channels_last=True, fold_batchnorm=True, one_detector_pass=True)
# The memory mode: the translator's blocks and D's layers recomputed in backward.
MEMORY = replace(PLAIN, checkpoint=True, checkpoint_detector=True)
