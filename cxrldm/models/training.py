"""What both training stages share: device and precision, distributed set-up, checkpoints that
resume exactly, and the non-finite-loss stop."""

from __future__ import annotations

import json
import os
import random
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from cxrldm.io import atomic_path
from cxrldm.models import PRECISIONS


class NonFiniteLoss(RuntimeError):
    pass


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # resolved: fp32, bf16 or fp16
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        if self.precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling, on only for fp16 (bf16 has fp32's range)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto': on GPUs bf16 where supported (Ampere and newer), else fp16; on CPUs bf16 where oneDNN has
    bf16 kernels (AVX512-BF16 or AMX), else fp32, because without them bf16 convolutions fall back to
    a reference implementation about 20x slower than fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs a CUDA GPU (loss scaling); use bf16 or fp32 on the CPU")
    return precision


def setup_runtime(precision: str, device: str = "auto") -> Runtime:
    """One process per device. Under torchrun (WORLD_SIZE set), joins the process group: NCCL on
    GPUs, gloo on CPUs."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Runtime(device, resolve_precision(precision, device), rank, world_size)


def local_part(runtime: Runtime, global_batch: int) -> slice:
    """This process's share of a global batch: equal contiguous slices, one per process."""
    if global_batch % runtime.world_size:
        raise ValueError(f"the global batch size {global_batch} does not divide among {runtime.world_size} processes")
    size = global_batch // runtime.world_size
    return slice(runtime.rank * size, (runtime.rank + 1) * size)


def global_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """One epoch's batches of indices (incomplete last batch dropped), shuffled by (seed, epoch) alone, so
    a resumed run and every process see the same batches."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return [order[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def step_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """The randomness of one training step (noise, timesteps, augmentation, prompt choices). It is drawn for
    the whole global batch on every process and each process keeps its slice: results do not depend on
    the number of processes, and a resumed run draws what the uninterrupted one did."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 1_000_003 + step) % 2**62)


def mean_over_processes(values: dict[str, float], runtime: Runtime) -> dict[str, float]:
    """Average logged numbers over processes (every process has the same keys)."""
    if runtime.world_size == 1:
        return values
    names = sorted(values)
    tensor = torch.tensor([values[n] for n in names], dtype=torch.float64, device=runtime.device)
    dist.all_reduce(tensor)
    return {n: v / runtime.world_size for n, v in zip(names, tensor.tolist())}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_finite(loss: torch.Tensor, where: str, runtime: Runtime | None = None) -> None:
    """Raise NonFiniteLoss on every process together when any process's loss is not finite (a process
    that stopped alone would leave the others waiting for it)."""
    bad = (~torch.isfinite(loss.detach())).any().float()
    if runtime is not None and runtime.world_size > 1:
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    if bad.item():
        raise NonFiniteLoss(f"non-finite loss ({loss.item()} here) at {where}")


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def unwrap(model):
    """The model inside DistributedDataParallel (an EMA's AveragedModel keeps its own `module`)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def save_checkpoint(path: str | Path, fingerprint: str, epoch: int, modules: dict, extra: dict | None = None) -> None:
    """Everything needed to continue after `epoch`: state dicts of models, optimisers and the scaler
    (keyed by name), the RNG states, and the fingerprint of the params and inputs it belongs to."""
    state = {
        "fingerprint": fingerprint,
        "epoch": epoch,
        "rng": rng_state(),
        **(extra or {}),
        "modules": {name: unwrap(m).state_dict() for name, m in modules.items()},
    }
    with atomic_path(path) as tmp:
        torch.save(_canonical(state), tmp)


def _canonical(value):
    """The same values as the same bytes, whether or not the run was resumed: every tensor in a storage
    of its own (torch.save writes whole storages, and a resumed optimiser's state views the loaded
    checkpoint's), and every string interned (pickle shares repeated objects by identity; keys loaded from
    a checkpoint are fresh objects, the optimiser's own keys interned literals)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone(memory_format=torch.contiguous_format)
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        return {_canonical(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_canonical(item) for item in value)
    return value


def elapsed_path(checkpoint: str | Path) -> Path:
    """Where a run's wall-clock seconds live: next to its checkpoint directory, outside what DVC hashes,
    so that checkpoints (and so dvc.lock) are byte-identical for the same params and inputs."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent.with_name(f"{checkpoint.parent.name}.{checkpoint.stem}.elapsed.json")


def save_elapsed(checkpoint: str | Path, fingerprint: str, epoch: int, seconds: float) -> None:
    from cxrldm.io import write_json

    write_json(elapsed_path(checkpoint), {"fingerprint": fingerprint, "epoch": epoch, "seconds": seconds})


def load_elapsed(checkpoint: str | Path, fingerprint: str, epoch: int) -> float:
    """The seconds spent up to `epoch` of the run `fingerprint` names; 0 when not recorded."""
    try:
        saved = json.loads(elapsed_path(checkpoint).read_text())
    except (OSError, ValueError):
        return 0.0
    return float(saved["seconds"]) if (saved.get("fingerprint"), saved.get("epoch")) == (fingerprint, epoch) else 0.0


def checkpoint_epoch(path: str | Path) -> int:
    """The last epoch a checkpoint holds."""
    return int(torch.load(Path(path), map_location="cpu", weights_only=True, mmap=True)["epoch"])


def checkpoint_matches(path: str | Path, fingerprint: str) -> bool:
    """Whether `path` holds a checkpoint of the run that `fingerprint` names (memory-mapped: cheap)."""
    path = Path(path)
    return (
        path.exists()
        and torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("fingerprint") == fingerprint
    )


def load_checkpoint(path: str | Path, fingerprint: str, modules: dict, runtime: Runtime | None = None) -> dict | None:
    """Restore `modules` and the RNG states from `path` if it exists and belongs to `fingerprint`;
    returns the checkpoint (for its epoch and extras), or None to start fresh. Every process reads the
    same file, so all of them must see it (on several nodes: a shared filesystem); if they don't agree
    on what to resume, all stop with one message instead of training out of step."""
    matches = checkpoint_matches(path, fingerprint)
    state = torch.load(path, map_location="cpu", weights_only=True) if matches else None
    if runtime is not None and runtime.world_size > 1:
        epoch = torch.tensor([state["epoch"] if state else 0], dtype=torch.float64, device=runtime.device)
        low, high = epoch.clone(), epoch.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        if low.item() != high.item():
            raise RuntimeError(
                f"{path}: processes would resume from different epochs ({int(low.item())} to "
                f"{int(high.item())}); run every node in the same shared workspace"
            )
    if state is None:
        return None
    for name, module in modules.items():
        unwrap(module).load_state_dict(state["modules"][name])
    set_rng_state(state["rng"])
    return state
