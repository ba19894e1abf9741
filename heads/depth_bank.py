"""The depth probe's head grid: linear heads per layer choice x learning rates, or one DPT head per
learning rate, assembled for `heads.depth.train_bank` (it sits above both head modules)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

from torch import nn

from bench.seeding import seeded
from heads.bank import ModuleBank
from heads.depth import BinSpec, LinearDepthHeads
from heads.dpt import DPTDepthHead

LAYER_CHOICES = {"last": 1, "last4": 4}  # linear heads: the last block, or the last 4 blocks concatenated


class BankMember(NamedTuple):
    name: str
    bank: int  # which module of `DepthBank.banks`
    index: int  # which member of that module
    layers: str
    lr: float


@dataclass
class DepthBank:
    """Modules trained together (a stacked linear bank per layer choice, or a `ModuleBank` of DPT
    heads), each module's learning rates, and every member in order (as `train_bank` numbers them)."""

    banks: list[nn.Module]
    lrs: list[list[float]]
    members: list[BankMember]

    def head(self, i: int) -> nn.Module:
        """Member i as a stand-alone head."""
        return self.banks[self.members[i].bank].member(self.members[i].index)


def build_bank(head: str, embed_dim: int, bins: BinSpec, lrs: Sequence[float], *,
               layer_choices: Sequence[str] = ("last", "last4"), use_cls: bool = True, linear_upsample: int = 4,
               linear_bn: bool = True, dpt_channels: int = 256, dpt_head_upsample: bool = True,
               seed: int = 0) -> DepthBank:
    """The probe's grid: "linear" -> lrs x layer choices (one stacked module per choice); "dpt" -> one
    DPT head per lr (reading the last 4 blocks). Every member starts from `seed`."""
    banks: list[nn.Module] = []
    members: list[BankMember] = []
    if head == "linear":
        for choice in layer_choices:
            banks.append(LinearDepthHeads(embed_dim, LAYER_CHOICES[choice], use_cls, bins, upsample=linear_upsample,
                                          use_bn=linear_bn, k=len(lrs), seed=seed))
            tag = f"linear-{choice}{'-cls' if use_cls else ''}"
            members += [BankMember(f"{tag}-lr{lr:g}", len(banks) - 1, j, choice, lr) for j, lr in enumerate(lrs)]
    elif head == "dpt":
        dpts = []
        for j, lr in enumerate(lrs):
            with seeded(seed):
                dpts.append(DPTDepthHead(embed_dim, bins, channels=dpt_channels,
                                         readout="project" if use_cls else "ignore", head_upsample=dpt_head_upsample))
            members.append(BankMember(f"dpt-c{dpt_channels}-lr{lr:g}", 0, j, "last4", lr))
        banks.append(ModuleBank(dpts))
    else:
        raise ValueError(f"unknown depth head {head!r} (linear | dpt)")
    return DepthBank(banks, [list(lrs) for _ in banks], members)
