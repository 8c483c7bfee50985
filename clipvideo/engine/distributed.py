"""torchrun/DDP plumbing: init from the environment, rank helpers, gathering results.

Launch with `torchrun --nproc_per_node=N -m clipvideo train CONFIG` (gloo on CPU, NCCL on GPU);
multi-node uses torchrun's rendezvous flags (see the README). Without torchrun's environment
variables everything runs as a single process.
"""

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "gpu":
        name = "cuda"
    if name == "cuda":
        if not torch.cuda.is_available():
            from .config import ConfigError  # bad input: the CLI's one line, not a traceback

            raise ConfigError("train.device=cuda: PyTorch sees no CUDA GPU here; use train.device=cpu, or auto to "
                              "take a GPU only when there is one")
        return torch.device("cuda", local_rank)
    return torch.device(name)


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group that torchrun describes in the environment, if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch_device = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if torch_device.type == "cuda" else "gloo"
        if torch_device.type == "cuda":
            torch.cuda.set_device(torch_device)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world_size, local_rank, torch_device)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_gather_objects(obj) -> list:
    """Every rank's `obj`, in rank order (the object itself when not distributed)."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def ranks_all_true(flag: bool, device: torch.device) -> list[bool]:
    """Every rank's flag, in rank order (one small all-gather); [flag] when not distributed."""
    if not dist.is_initialized():
        return [flag]
    mine = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    out = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(out, mine)
    return [bool(t.item()) for t in out]


def all_reduce_mean(value: float, device: torch.device) -> float:
    if not dist.is_initialized():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.item() / dist.get_world_size()


class _MainRankOnly(logging.Filter):
    def __init__(self, rank: int):
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        return self.rank == 0 or record.levelno >= logging.WARNING


def setup_logging(rank: int = 0, level: int = logging.INFO) -> None:
    """Log lines from rank 0 only (warnings from every rank, tagged)."""
    handler = logging.StreamHandler()
    prefix = f"[rank {rank}] " if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""
    handler.setFormatter(logging.Formatter(f"{prefix}%(message)s"))
    handler.addFilter(_MainRankOnly(rank))
    root = logging.getLogger("clipvideo")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
