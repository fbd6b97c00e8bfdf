"""Multi-GPU training under `torchrun`: data parallel, gradients averaged across processes.

`torch.nn.parallel.DistributedDataParallel` is not used as a wrapper because a SPADE-SR step
does not fit its contract: R1 is a double backward through D (`autograd.grad(create_graph=True)`),
which DDP's reducer does not support, and D and G alternate within one step. Averaging each
network's gradients after its backward pass (and broadcasting BatchNorm statistics from rank 0)
is exactly what DDP computes, in the place where this loop needs it. Single-process runs skip
all of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import distributed, nn

from thermal_synth.engine.inference import select_device


@dataclass(frozen=True)
class Workers:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def average_gradients(self, network: nn.Module) -> None:
        if not self.distributed:
            return
        for parameter in network.parameters():
            if parameter.grad is not None:
                distributed.all_reduce(parameter.grad, op=distributed.ReduceOp.SUM)
                parameter.grad.div_(self.world_size)
        for buffer in network.buffers():
            distributed.broadcast(buffer, src=0)

    def check_in_sync(self, network: nn.Module) -> None:
        """Raises if the processes' weights differ: averaged gradients must keep them identical."""
        if not self.distributed:
            return
        with torch.no_grad():
            positions = torch.arange(1, 1 + sum(p.numel() for p in network.parameters()), dtype=torch.float64)
            flat = torch.cat([p.detach().flatten().double().cpu() for p in network.parameters()])
            fingerprint = torch.stack([flat.sum(), (flat * positions.sin()).sum()])
        values = self.gather(fingerprint)
        if any(not torch.allclose(values[0], other, rtol=1e-9, atol=1e-9) for other in values[1:]):
            raise RuntimeError(f"the {self.world_size} training processes hold different weights")

    def barrier(self) -> None:
        if self.distributed:
            distributed.barrier()

    def all_agree(self, flag: bool) -> bool:
        """True only if every process says True (e.g. 'my losses are finite', 'time is up')."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self._collective_device())
        distributed.all_reduce(value, op=distributed.ReduceOp.MIN)
        return bool(value.item() > 0.5)

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every process's value of a same-shaped tensor, in rank order, on the CPU."""
        if not self.distributed:
            return [tensor.clone()]
        local = tensor.to(self._collective_device())
        parts = [torch.empty_like(local) for _ in range(self.world_size)]
        distributed.all_gather(parts, local)
        return [part.cpu() for part in parts]

    def _collective_device(self) -> torch.device:
        backend = distributed.get_backend()
        return torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")


def start_workers(device_name: str) -> tuple[Workers, torch.device]:
    """Reads torchrun's environment; without it, one process on `device_name`."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Workers(), select_device(device_name)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = select_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not distributed.is_initialized():
        distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Workers(rank, world_size, local_rank), device


def stop_workers(workers: Workers) -> None:
    if workers.distributed and distributed.is_initialized():
        distributed.destroy_process_group()
