"""Data-parallel training with torch.distributed (DDP), launched by ``torchrun``.

``torchrun --nproc_per_node N [--nnodes M ...] $(which dftplug) train ...`` runs the ordinary
``dftplug train`` command in N × M processes: torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and the
rendezvous address; :func:`setup` joins the process group (nccl on CUDA, gloo on CPU) and each
process uses GPU LOCAL_RANK. Without those variables (a plain run) everything is single-process
and no process group is created.

Division of work: each rank trains on its own shard of the training structures (rank r owns
training structures r, r + N, ...) and reads only those; ``batch_size`` is per rank (global batch =
N × batch_size); DDP averages the gradients, so all ranks keep identical parameters. Rank 0 also
does the closed-form fit (:meth:`.model.DeltaHModel.set_statistics`, it needs the whole training
set), evaluates the validation set, logs, checkpoints and decides the schedule; its decisions are
broadcast so that every rank takes the same number of steps with the same learning rate.
"""
from __future__ import annotations

import gc
import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass
class Context:
    """This process's place in the job: rank in [0, world), its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, indices: list) -> list:
        """The items of ``indices`` this rank owns (round robin)."""
        return list(indices)[self.rank::self.world]

    def shard_size(self, n_items: int) -> int:
        """Size of the largest shard of ``n_items``: every rank takes that many items per epoch."""
        return math.ceil(n_items / self.world)

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (any picklable object)."""
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, fn):
        """fn() evaluated on rank 0 only, its result broadcast to every rank."""
        return self.broadcast(fn() if self.is_main else None)

    def average(self, values: dict) -> dict:
        """Mean over the ranks of each float of ``values`` (e.g. the epoch's training losses)."""
        if self.world == 1:
            return {k: float(v) for k, v in values.items()}
        x = torch.tensor([float(v) for v in values.values()], dtype=torch.float64, device=self.device)
        dist.all_reduce(x)
        return {k: float(v) / self.world for k, v in zip(values, x.tolist())}

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module to train: DDP around ``model`` when world > 1 (parameters and buffers are
        broadcast from rank 0 here), else ``model`` itself."""
        if self.world == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    def close(self) -> None:
        """Leave the process group. Call after the last reference to the DDP wrapper is gone: its
        reducer talks to the group when it is freed, and freeing it after the group is destroyed
        can hang. The barrier keeps any rank from destroying the group under a collective."""
        if self.world > 1 and dist.is_initialized():
            gc.collect()
            dist.barrier()
            dist.destroy_process_group()


def setup(device: str = "cpu") -> Context:
    """Join the torchrun job described by the environment, or a single-process Context.
    ``device``: "cpu" or "cuda" (under torchrun, "cuda" becomes cuda:LOCAL_RANK)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = torch.device(device)
    if world == 1:
        return Context(0, 1, dev)
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), dev)
