"""Training on several processes, GPUs and hosts: the DDP plumbing every trainer (motion, video, SR) shares.

`vlogger train motion|video|sr` run unchanged under a launcher, one process per GPU:

    torchrun --nproc_per_node 8 -m vlogger_cli train video --data D --out RUN ...
    torchrun --nnodes 2 --node_rank 0|1 --master_addr HOST --master_port 29500 --nproc_per_node 8 -m vlogger_cli ...
    accelerate launch --multi_gpu --num_processes 8 -m vlogger_cli train video ...

Launchers set RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; `session` joins that process
group (nccl on CUDA, gloo on the CPU) and puts each process on GPU LOCAL_RANK. Without them: one process.

Why a run is the same on any number of processes (and so resumable on any number):
- a config's batch size is the GLOBAL batch of one optimiser step. Every rank draws the whole batch's plan
  (clips, windows, noise, timesteps) from the same seeded generators and computes only its rows
  (`Context.micro_batches`: this rank's share, split into `grad_accum` micro-batches). The generators and
  the data position after a step are therefore the same on every rank and for every world size.
- a rank's loss is its share of the global batch's loss (its rows' mean x rows / global rows); DDP averages
  gradients over ranks, so backward runs on loss x world size and the summed gradient is the gradient of
  one process holding the whole batch. 8 GPUs, or 1 GPU with grad_accum 8, train the same model.
- rank 0 alone writes (logs, validation images, checkpoints, exports); its RNG states and data position,
  which are everyone's, go in the checkpoint. The run folder must be on storage every host can read.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import nn

from vlogger_cli.errors import InputError

PRECISIONS = ("auto", "bf16", "fp32", "no")  # "no": the older spelling of fp32


def check_precision(value: str) -> str:
    if value not in PRECISIONS:
        raise InputError(f"mixed_precision must be auto (bf16 on CUDA, fp32 on the CPU), bf16 or fp32, not {value!r}")
    return value


def autocast(device: torch.device, mode: str):
    """bf16 autocast for "bf16" anywhere and "auto" on CUDA; fp32 otherwise (weights stay fp32 either way)."""
    enabled = mode == "bf16" or (mode == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """auto | cpu | cuda -> this process's device (GPU LOCAL_RANK when several processes share a host)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is visible; use --device cpu or auto")
        if local_rank >= torch.cuda.device_count():
            raise InputError(f"process LOCAL_RANK {local_rank} has no GPU ({torch.cuda.device_count()} visible): "
                             f"start at most one process per GPU (--nproc_per_node)")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if name != "cpu":
        raise InputError(f"device must be auto, cpu or cuda, not {name!r}")
    return torch.device("cpu")


def split(total: int, parts: int) -> list[int]:
    """Sizes of `parts` contiguous pieces of `total` items, the first ones one larger when it does not divide."""
    return [total // parts + (i < total % parts) for i in range(parts)]


class _Loss(nn.Module):
    """A model and its loss function as one module, so DDP sees the whole loss computation as its forward."""

    def __init__(self, model: nn.Module, loss: Callable):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, *args, **kwargs):
        return self.loss(self.model, *args, **kwargs)


@dataclass
class Context:
    """Where this process stands: its rank among `world` processes and its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes."""
        return self.rank == 0

    def micro_batches(self, total: int, accum: int = 1) -> list[slice]:
        """This rank's rows of a global batch of `total` items, as up to `accum` contiguous micro-batches."""
        if total < self.world:
            raise InputError(f"a batch of {total} cannot be shared by {self.world} processes: "
                             f"raise the batch size to at least {self.world} or start fewer processes")
        if accum < 1:
            raise InputError(f"grad_accum must be >= 1, not {accum}")
        first = sum(split(total, self.world)[:self.rank])
        out = []
        for size in split(split(total, self.world)[self.rank], accum):
            if size:
                out.append(slice(first, first + size))
                first += size
        return out

    def wrap(self, model: nn.Module, loss: Callable) -> nn.Module:
        """`loss(model, *args)` as a module; DDP over the parameters that train now (frozen ones are neither
        broadcast nor all-reduced: a Stable-Diffusion base stays out of the gradient traffic)."""
        module = _Loss(model, loss)
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel as DDP

        frozen = [name for name, p in module.named_parameters() if not p.requires_grad]
        frozen += [name for name, _ in module.named_buffers()]
        DDP._set_params_and_buffers_to_ignore_for_model(module, frozen)
        return DDP(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def step(self, wrapped: nn.Module, micro_args: list[tuple], optimizer: torch.optim.Optimizer,
             params: list[nn.Parameter], grad_clip: float, precision: str) -> dict[str, float]:
        """One optimiser step over this rank's micro-batches (gradients accumulate locally and are
        all-reduced once, with the last backward); returns the global batch's loss terms.

        wrapped(*args) must return a dict of loss terms whose "loss" is the micro-batch's share of the
        global batch's loss (so the shares of all ranks and micro-batches sum to it)."""
        optimizer.zero_grad(set_to_none=True)
        sums: dict[str, torch.Tensor] = {}
        for i, args in enumerate(micro_args):
            last = i == len(micro_args) - 1
            with contextlib.nullcontext() if last or self.world == 1 else wrapped.no_sync():
                with autocast(self.device, precision):
                    terms = wrapped(*args)
                (terms["loss"].float() * self.world).backward()  # DDP divides the summed gradients by world
            for key, value in terms.items():
                sums[key] = sums.get(key, 0) + value.detach().float()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        return self.sum(sums)

    def sum(self, values: dict[str, torch.Tensor | float]) -> dict[str, float]:
        """Each value summed over the ranks (one all-reduce)."""
        keys = sorted(values)
        flat = torch.stack([torch.as_tensor(values[k], dtype=torch.float32).reshape(()) for k in keys])
        if self.world > 1:
            flat = flat.to(self.device)
            torch.distributed.all_reduce(flat)
        return dict(zip(keys, flat.tolist()))

    def minimum(self, value: int) -> int:
        """The smallest of the ranks' values (e.g. a batch that fits every rank's GPU)."""
        if self.world == 1:
            return value
        t = torch.tensor([value], device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        return int(t.item())

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def take_rows(batch, rows: slice):
    """The rows of a dataclass of tensors (None fields stay None): one rank's or micro-batch's part of a batch."""
    import dataclasses

    values = (getattr(batch, f.name) for f in dataclasses.fields(batch))
    return type(batch)(*(None if v is None else v[rows] for v in values))


def launched() -> tuple[int, int, int] | None:
    """(rank, world, local rank) set by torchrun / accelerate launch, or None for a single process."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0"))


@contextlib.contextmanager
def session(device: str = "auto") -> Iterator[Context]:
    """This process's Context: joins the launcher's process group for the duration (left on exit, unless
    it was already joined by the caller)."""
    import torch.distributed as dist

    where = launched()
    if where is None:
        yield Context(device=resolve_device(device))
        return
    rank, world, local_rank = where
    ctx = Context(rank, world, local_rank, resolve_device(device, local_rank))
    joined = dist.is_initialized()
    if not joined:
        # a generous timeout: rank 0 validates and writes checkpoints while the others wait at the next step
        dist.init_process_group("nccl" if ctx.device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(minutes=60))
    try:
        yield ctx
        ctx.barrier()  # nobody leaves before rank 0 has written the exports
    finally:
        if not joined:
            dist.destroy_process_group()


__all__ = ["Context", "session", "autocast", "resolve_device", "check_precision", "launched", "split", "take_rows"]
