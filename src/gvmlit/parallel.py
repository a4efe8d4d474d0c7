"""Scale-out: FSDP2 sharding through Lightning, and the few collectives distributed rollouts need.

gvmlit does not launch or shard anything itself. Lightning's launcher starts the processes (one per
device; torchrun and SLURM are detected), :class:`FSDP2Strategy` — Lightning's
``ModelParallelStrategy`` with a data-parallel mesh over all ranks — sets up the process group and the
device mesh, and the LightningModule applies torch's ``fully_shard`` per decoder layer in
``configure_model`` (:func:`shard_policy`).

Distributed rollouts (:class:`gvmlit.collector.RolloutCollector` and the learner) use three helpers
from here: :func:`all_gather_objects` (torch's ``all_gather_object``, also without a process group: every
rank gets every rank's generated samples, so allocators see the same statistics and compute the same
n_i), :func:`balanced_partition` (the epoch's rollouts are split across ranks balanced by tokens, equal
counts so every rank takes the same number of optimiser steps) and :func:`full_state_dict` (the
unsharded weights, for rollouts and export). Reductions of numbers go through Lightning's strategy
(``reduce``, ``reduce_boolean_decision``) and gradient norms through torch's ``get_total_norm``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta

import torch
import torch.distributed as dist
from lightning.pytorch.strategies import ModelParallelStrategy

from gvmlit.errors import GvmlitError
from gvmlit.policy import resolve_dtype


# ---------------------------------------------------------------------- process group
def world() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_gather_objects(obj) -> list:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` when not distributed."""
    _, size = world()
    if size == 1:
        return [obj]
    gathered = [None] * size
    dist.all_gather_object(gathered, obj)
    return gathered


# ---------------------------------------------------------------------- partitions
def balanced_partition(costs: Sequence[float], parts: int, equal_size: bool = True) -> list[list[int]]:
    """Split item indices into ``parts`` lists whose cost sums are as even as a greedy pass makes them.

    Items are taken in decreasing cost and each goes to the part with the smallest sum so far (longest
    processing time first). With ``equal_size`` every part gets ⌊n/parts⌋ items (a part that is full
    takes no more) and the ``n mod parts`` cheapest items are left out: every rank must take the same
    number of optimiser steps. Each part lists its indices in increasing order. ``parts == 1`` returns
    all indices in order.
    """
    n = len(costs)
    if parts < 1:
        raise ValueError("parts must be ≥ 1")
    if parts == 1:
        return [list(range(n))]
    capacity = n // parts if equal_size else n
    order = sorted(range(n), key=lambda i: (-costs[i], i))
    if equal_size:
        order = order[: capacity * parts]
    sums = [0.0] * parts
    result: list[list[int]] = [[] for _ in range(parts)]
    for i in order:
        open_parts = [p for p in range(parts) if len(result[p]) < capacity]
        target = min(open_parts, key=lambda p: (sums[p], p))
        result[target].append(i)
        sums[target] += costs[i]
    return [sorted(part) for part in result]


def rank_share(costs: Sequence[float], rank: int, size: int) -> list[int]:
    """The indices rank ``rank`` generates: all items split into ``size`` cost-balanced parts (sizes may differ)."""
    return balanced_partition(costs, size, equal_size=False)[rank]  # one part: all indices, in order


def rank_rollouts(rollouts: list) -> tuple[list, int]:
    """This rank's part of the epoch's rollouts (all of them on one process): balanced by tokens, equal
    counts on every rank; returns it and how many rollouts no rank got (fewer than the world size)."""
    rank, size = world()
    shares = balanced_partition([len(r.prompt_ids) + len(r.response_ids) for r in rollouts], size)
    return [rollouts[i] for i in shares[rank]], len(rollouts) - sum(len(share) for share in shares)


# ---------------------------------------------------------------------- sharded models
def is_sharded(model: torch.nn.Module) -> bool:
    """Whether ``model`` holds DTensor parameters (``fully_shard`` was applied)."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def full_state_dict(model: torch.nn.Module, rank0_only: bool = False) -> dict[str, torch.Tensor]:
    """The unsharded state dict of ``model`` (a collective when it is sharded: call it on all ranks).

    With ``rank0_only`` the full tensors land on rank 0, in CPU memory, and the other ranks get an
    empty dict (export); otherwise every rank gets them on its device (rollout replicas).
    """
    if not is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=rank0_only)
    return get_model_state_dict(model, options=options)


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks of a ``transformers`` causal LM (the classes in ``_no_split_modules``)."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise GvmlitError(
            f"cannot find the decoder layers of {type(model).__name__} to shard (no _no_split_modules); "
            "FSDP2 needs a transformers causal LM"
        )
    return layers


def shard_policy(
    model: torch.nn.Module,
    mesh,
    param_dtype: torch.dtype | None = None,
    reduce_dtype: torch.dtype | None = None,
    reshard_after_forward: bool = True,
) -> torch.nn.Module:
    """``fully_shard`` each decoder layer, then the whole model (embeddings, norm, head), over ``mesh``.

    ``param_dtype`` is the dtype of the all-gathered parameters the forward and backward compute in
    (e.g. bfloat16) while the sharded master weights and the optimiser keep theirs; ``reduce_dtype``
    is the dtype gradients are reduced in.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=policy, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=mesh, mp_policy=policy, reshard_after_forward=reshard_after_forward)
    return model


# ---------------------------------------------------------------------- the strategy
class FSDP2Strategy(ModelParallelStrategy):
    """FSDP2 across all processes: Lightning's ``ModelParallelStrategy`` with a data-parallel mesh over
    every rank (no tensor parallelism), and the sharding settings the policy module applies.

    Use it as ``trainer.strategy`` (``class_path: gvmlit.parallel.FSDP2Strategy``) with
    ``trainer.devices`` GPUs per node and ``trainer.num_nodes`` nodes. Checkpoints are distributed
    (a directory, one shard file per rank); ``gvmlit export`` turns one into a Hugging Face directory.

    Args:
        param_dtype: dtype the gathered parameters compute in (``bfloat16`` for mixed precision;
            None = the parameters' own dtype). Keep ``trainer.precision: 32-true`` so that master
            weights and optimiser state stay in float32.
        reduce_dtype: dtype of the gradient reduction (None = ``param_dtype``).
        reshard_after_forward: free gathered parameters after each layer's forward (less memory, one
            more all-gather in backward).
        save_distributed_checkpoint: each rank writes its shard (True), or rank 0 writes one full file.
        allow_cpu: run on CPU processes with the gloo backend — for tests and debugging only; without
            it, FSDP2 on a machine without a GPU is an error.
        process_group_backend: ``nccl`` / ``gloo`` (default: by device).
        timeout: collective timeout.
    """

    def __init__(
        self,
        param_dtype: str | None = None,
        reduce_dtype: str | None = "float32",
        reshard_after_forward: bool = True,
        save_distributed_checkpoint: bool = True,
        allow_cpu: bool = False,
        process_group_backend: str | None = None,
        timeout: timedelta | None = timedelta(minutes=30),
    ) -> None:
        super().__init__(
            data_parallel_size="auto",
            tensor_parallel_size=1,
            save_distributed_checkpoint=save_distributed_checkpoint,
            process_group_backend=process_group_backend,
            timeout=timeout,
        )
        self.param_dtype = resolve_dtype(param_dtype) if param_dtype else None
        self.reduce_dtype = resolve_dtype(reduce_dtype) if reduce_dtype else None
        self.reshard_after_forward = reshard_after_forward
        self.allow_cpu = allow_cpu

    def setup_environment(self) -> None:
        if self.root_device.type == "cpu":
            if not self.allow_cpu:
                raise GvmlitError(
                    "FSDP2Strategy needs CUDA GPUs and this run is on CPU "
                    + ("(no GPU is available)" if not torch.cuda.is_available() else "(trainer.accelerator is cpu)")
                    + "; for a CPU test run with gloo set trainer.strategy.init_args.allow_cpu=true"
                )
            # one process per 'device' on shared cores: do not oversubscribe them
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(self.num_processes, 1)))
        if self._data_parallel_size == "auto":
            self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()

    def shard(self, model: torch.nn.Module) -> torch.nn.Module:
        """Apply FSDP2 to a policy (or reference) model over the data-parallel mesh."""
        return shard_policy(
            model,
            self.device_mesh["data_parallel"],
            self.param_dtype,
            self.reduce_dtype,
            self.reshard_after_forward,
        )


def shard_for(strategy, model: torch.nn.Module) -> torch.nn.Module:
    """Shard ``model`` as ``strategy`` asks: FSDP2Strategy's settings, or a plain ModelParallelStrategy
    sharding over its data-parallel mesh (tensor parallelism is not supported). Other strategies: as is."""
    if isinstance(strategy, FSDP2Strategy):
        return strategy.shard(model)
    if isinstance(strategy, ModelParallelStrategy):
        mesh = strategy.device_mesh
        if mesh["tensor_parallel"].size() > 1:
            raise GvmlitError(
                "gvmlit shards the policy with FSDP2 only: use trainer.strategy=gvmlit.parallel.FSDP2Strategy "
                "(ModelParallelStrategy defaults to tensor_parallel_size = devices)"
            )
        return shard_policy(model, mesh["data_parallel"])
    return model


def check_strategy(strategy) -> None:
    """One-line errors for strategies gvmlit cannot train with."""
    from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy

    if isinstance(strategy, FSDPStrategy):
        raise GvmlitError(
            "trainer.strategy: Lightning's FSDPStrategy (FSDP1) is not supported; use "
            "gvmlit.parallel.FSDP2Strategy (FSDP2, per-layer sharding, distributed checkpoints)"
        )
    if isinstance(strategy, DeepSpeedStrategy):
        raise GvmlitError("trainer.strategy: DeepSpeed is not supported; use gvmlit.parallel.FSDP2Strategy")

