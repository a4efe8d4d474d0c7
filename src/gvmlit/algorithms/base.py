"""PolicyModule: the LightningModule every gvmlit learner is — policy, the epoch's data, training step, evaluation.

It owns the pluggable parts a user swaps by config (``model.init_args`` in YAML): the policy loader,
the :class:`~gvmlit.sampling.Sampler` and the :class:`~gvmlit.verifiers.Verifier` (and, in
:class:`~gvmlit.algorithms.rollout.RolloutAlgorithm`, the :class:`~gvmlit.allocation.BudgetAllocator`),
and its settings in typed groups (:mod:`gvmlit.algorithms.settings`).

**The learner drives the epoch.** At the start of every epoch (``on_train_epoch_start``) it produces the
epoch's training sequences — its own rollouts (RAFT, GRPO) or the data module's demonstrations (SFT) —
into the :class:`~gvmlit.data.buffer.EpochBuffer` it shares with the data module, whose training loader
serves that buffer. Nothing else is needed from the Trainer: a plain ``lightning.Trainer(...)`` with its
default arguments trains on fresh data every epoch.

Algorithms differ in one hook, ``policy_loss(logprobs, batch)`` (pure functions in :mod:`gvmlit.losses`),
and in ``epoch_data(epoch)``.
"""

from __future__ import annotations

import logging
import zlib
from contextlib import contextmanager

import torch
from lightning.pytorch import LightningModule

from gvmlit import stopping
from gvmlit.algorithms.evaluation import Evaluation, Evaluator
from gvmlit.algorithms.settings import EvaluationSettings, LossSettings, Optimization
from gvmlit.checkpoints import describe_component, restore_rng, rng_state
from gvmlit.resume import check_resume, describe_learner
from gvmlit.collector import Budget, RolloutCollector
from gvmlit.data.buffer import EpochBuffer
from gvmlit.data.rollout import RolloutDataModule
from gvmlit.errors import GvmlitError
from gvmlit.export import describe_policy, plain_model
from gvmlit.forward import batch_logprobs
from gvmlit.losses import aggregate, kl_k3, token_entropy
from gvmlit.parallel import check_strategy, full_state_dict, is_sharded, shard_for, world
from gvmlit.policy import PolicyLoader, TinyCharPolicy, max_model_length
from gvmlit.records import Prompt, Rollout
from gvmlit.sampling import HFSampler, Sampler
from gvmlit.seeding import RunSeeded, run_seed
from gvmlit.verifiers import ArithmeticVerifier, Verifier

log = logging.getLogger("gvmlit")


class PolicyModule(LightningModule):
    """Base of gvmlit's learners.

    Args:
        policy: how to build the policy and tokenizer (``PretrainedPolicy`` or ``TinyCharPolicy``).
        sampler: draws completions from the live policy (default: ``HFSampler``).
        verifier: scores completions against their prompt records (default: ``ArithmeticVerifier``).
        eval_sampler: sampling settings for evaluation (default: ``sampler``); greedy accuracy always
            decodes by argmax.
        optim: the optimiser (learning rate, warm-up, weight decay, what to do with a non-finite step).
        evaluation: held-out evaluation (samples per problem, k of pass@k / maj@k, benchmark average).
        loss: how the loss is computed (aggregation, KL to the initial policy, ratio clip, correction).
    """

    #: whether the loss compares with π_old (ratio-based losses), which the learner then recomputes
    needs_old_logprobs: bool = False
    #: what the learner trains on, which its data module must serve (``RolloutDataModule.serves``)
    trains_on: str = "rollouts"

    def __init__(
        self,
        policy: PolicyLoader | None = None,
        sampler: Sampler | None = None,
        verifier: Verifier | None = None,
        eval_sampler: Sampler | None = None,
        optim: Optimization = Optimization(),
        evaluation: EvaluationSettings = EvaluationSettings(),
        loss: LossSettings = LossSettings(),
    ) -> None:
        super().__init__()
        self.policy = policy if policy is not None else TinyCharPolicy()
        self.sampler = sampler if sampler is not None else HFSampler()
        self.verifier = verifier if verifier is not None else ArithmeticVerifier()
        self.eval_sampler = eval_sampler if eval_sampler is not None else self.sampler
        self.optim = optim
        self.evaluation = evaluation
        self.loss = loss
        self.skipped_batches = 0
        self.model: torch.nn.Module | None = None
        self.tokenizer = None
        self.budget = Budget()
        self.buffer = EpochBuffer()  # what the data module's training loader serves this epoch
        self.collector: RolloutCollector | None = None
        self.evaluator = Evaluator(self.evaluation)
        self.last_evaluation: Evaluation | None = None
        self._reference: list[torch.nn.Module] = []  # kept out of state_dict and parameters()
        self._replica: list[torch.nn.Module] = []  # unsharded copy for rollouts, when the policy is sharded
        self._replica_step: int | None = None
        self._eval_policy: list[torch.nn.Module] = []  # a list: kept out of state_dict and submodules
        self._export_description: dict | None = None  # model config + tokenizer files, saved in checkpoints
        self._run_seed = 0
        self._checkpoint_step: int | None = None  # the step of the checkpoint evaluated by validate / test
        #: continue a checkpoint with settings that differ from the run's (gvmlit.resume); the CLI's --resume_with_changes
        self.resume_with_changes = False
        self._resumed_with_changes = False

    # ------------------------------------------------------------------ start-up
    @property
    def data(self) -> RolloutDataModule:
        """The run's data module (the learner asks it for prompts; it never calls the learner)."""
        return self.trainer.datamodule

    def setup(self, stage: str) -> None:
        """Refuse pairs of parts that cannot work together, seed every component from the run seed, and
        take SIGTERM / SIGINT as requests to stop at the next boundary (gvmlit.stopping)."""
        self.check_compatibility()
        stopping.install()
        self._run_seed = run_seed()
        for component in {id(c): c for c in self.components()}.values():
            if isinstance(component, RunSeeded):
                component.use_run_seed(self._run_seed)

    def teardown(self, stage: str) -> None:
        stopping.uninstall()

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        stopping.check(f"training (epoch {self.current_epoch}, batch {batch_idx})")

    def components(self) -> list:
        """The pluggable parts, for seeding and for the record a checkpoint keeps."""
        return [self.policy, self.sampler, self.eval_sampler, self.verifier]

    def check_compatibility(self) -> None:
        """One-line errors, at start-up, for what would fail later (extended by subclasses)."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        name = type(self).__name__
        if not isinstance(datamodule, RolloutDataModule):
            got = "no data module" if datamodule is None else type(datamodule).__name__
            raise GvmlitError(f"{name} needs a gvmlit data module (gvmlit.data.RolloutDataModule or DemonstrationDataModule); got {got} — pass datamodule= to trainer.fit")
        if datamodule.serves != self.trains_on:
            wanted = "gvmlit.data.DemonstrationDataModule" if self.trains_on == "demonstrations" else "gvmlit.data.RolloutDataModule"
            raise GvmlitError(
                f"{name} trains on {self.trains_on}, but data is a {type(datamodule).__name__}, which serves {datamodule.serves}: "
                f"set data.class_path={wanted}"
            )

    def configure_model(self) -> None:
        """Load the policy (and the frozen reference); under FSDP2 shard both per decoder layer; give
        the data module what it needs to encode prompts and serve the epoch's buffer."""
        if self.model is None:
            strategy = self.trainer.strategy if self._trainer is not None else None
            check_strategy(strategy)
            model, self.tokenizer = self.policy.load()
            model.train()  # from_pretrained returns eval mode
            if self.loss.kl_coef > 0 and not self.policy.has_adapters:
                self._reference = [shard_for(strategy, _frozen_copy(model))]
            self.model = shard_for(strategy, model)
            self.collector = RolloutCollector(self.sampler, self.verifier, self.tokenizer, self.budget, **self.collector_settings())
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if isinstance(datamodule, RolloutDataModule):
            longest, limit = max(self.sampler.max_new_tokens, self.eval_sampler.max_new_tokens), max_model_length(self.model)
            if longest >= limit:
                raise GvmlitError(
                    f"the samplers' max_new_tokens={longest} leaves no room for a prompt: it exceeds the model's maximum length "
                    f"{limit} (model.sampler / model.eval_sampler .init_args.max_new_tokens)"
                )
            datamodule.connect(
                self.tokenizer, chat_template=self.policy.use_chat_template,
                max_prompt_tokens=limit - longest, buffer=self.buffer,
            )  # fmt: skip

    def collector_settings(self) -> dict:
        return {}

    def local_policy(self) -> torch.nn.Module:
        """The policy with its current weights as one unsharded module, for rollouts and gradient norms.

        A sharded policy (FSDP2) is gathered into a replica kept on this rank, refreshed when the weights
        changed since the last call (a collective: every rank calls it at the same points).
        """
        if not is_sharded(self.model):
            return self.model
        if self._replica and self._replica_step == self.global_step:
            return self._replica[0]
        weights = full_state_dict(self.model)
        if not self._replica:
            dtype = next(iter(weights.values())).dtype
            self._replica = [self.policy.with_adapters(plain_model(self.model.config, dtype)).to(self.device).eval()]
        self._replica[0].load_state_dict(weights)
        self._replica_step = self.global_step
        return self._replica[0]

    def rollout_policy(self, sampler: Sampler) -> torch.nn.Module:
        """The policy ``sampler`` generates from: engines that sync weights themselves take the (maybe
        sharded) training policy, others an unsharded local one."""
        return self.model if sampler.accepts_sharded_policy else self.local_policy()

    @contextmanager
    def reference_policy(self):
        """The frozen initial policy for the KL term: a copy (full fine-tuning), or the same model with its
        adapters switched off (LoRA: no second copy of the weights)."""
        if self._reference:
            yield self._reference[0]
        else:
            with self.policy.adapters_disabled(self.model):
                yield self.model

    @property
    def loss_temperature(self) -> float:
        """Ratio-based losses compare with π_old at the sampling temperature; likelihood losses use T = 1."""
        return self.sampler.temperature if self.needs_old_logprobs else 1.0

    @contextmanager
    def random_stream(self, name: str):
        """Run the block on its own torch random stream seeded by (run seed, ``name``), so that what it
        draws neither depends on nor shifts anything else (exact resume, equal evaluation draws across
        ablation arms); the global stream is restored afterwards. Ranks draw different numbers."""
        device = next(self.model.parameters()).device
        rank, size = world()
        name = f"{name}:rank{rank}" if size > 1 else name
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(zlib.crc32(f"{self._run_seed}:{name}".encode()))
            yield

    def on_train_start(self) -> None:
        if self._resumed_with_changes:  # after Lightning restored the optimiser state from the checkpoint
            self.apply_optimizer_settings()

    def on_fit_start(self) -> None:
        if self._reference:
            self._reference[0].to(self.device)
        # π0's evaluation, before the first rollout is drawn: its point sits at 0 generated samples
        if self.trainer.ckpt_path is None and self.trainer.limit_val_batches != 0 and self.start_evaluation("val"):
            for batch in self.data.val_dataloader():
                self.validation_step(batch, 0)
            stopping.check("evaluating the starting policy")
            self.last_evaluation = self.finish_evaluation("val")

    # ------------------------------------------------------------------ the epoch
    def on_train_epoch_start(self) -> None:
        """The epoch's training sequences into the buffer the data module's loader serves."""
        epoch = self.current_epoch
        self.buffer.fill(epoch, self.epoch_data(epoch))

    def epoch_data(self, epoch: int) -> list[Rollout]:
        """This rank's training sequences of ``epoch``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ training
    def policy_loss(self, logprobs: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-token loss [B, T] and extra per-token diagnostics to log (masked means)."""
        raise NotImplementedError

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        if self.buffer.epoch != self.current_epoch:
            raise GvmlitError(
                f"no training data was collected for epoch {self.current_epoch}: gvmlit resumes from the checkpoints it "
                f"writes at the end of an epoch, not from one written in the middle of an epoch"
            )
        if batch["input_ids"].shape[0] == 0:
            return None  # an epoch with nothing to train on (logged when it was collected): no update
        logprobs, logits = batch_logprobs(self.model, batch, self.loss_temperature)  # [B, T], [B, T, V]
        mask = batch["response_mask"]
        per_token, diagnostics = self.policy_loss(logprobs, batch)
        per_token = per_token * batch["correction"]  # mismatch correction weights (1 without)
        if self.loss.kl_coef > 0:
            with torch.no_grad(), self.reference_policy() as reference:
                ref_logprobs, _ = batch_logprobs(reference, batch, self.loss_temperature)
            kl = kl_k3(logprobs, ref_logprobs, value_clamp=self.loss.kl_value_clamp)
            per_token = per_token + self.loss.kl_coef * kl
            diagnostics["kl"] = kl.detach()
        global_tokens = None
        if self.loss.aggregation == "dapo":  # every rank's tokens of this step (a collective)
            global_tokens = float(self.trainer.strategy.reduce(mask.sum().float(), reduce_op="sum"))
        loss = aggregate(
            per_token, mask, self.loss.aggregation, batch["group_ids"], global_tokens=global_tokens,
            world_size=self.trainer.world_size, max_tokens=self.sampler.max_new_tokens,
        )  # fmt: skip
        if not self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)), all=True):
            return self._nonfinite(f"train/loss is {float(loss.detach())} at step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx})")
        with torch.no_grad():
            diagnostics["entropy"] = token_entropy(logits.detach(), self.loss_temperature)
            n_tokens = mask.sum().clamp(min=1)
            logged = {f"train/{k}": (v.float() * mask).sum() / n_tokens for k, v in diagnostics.items()}
        self.log("train/loss", loss, prog_bar=True, batch_size=mask.shape[0], sync_dist=world()[1] > 1)
        self.log_dict(logged, batch_size=mask.shape[0])
        return loss

    def _nonfinite(self, where: str) -> None:
        """Stop (default) or skip a non-finite loss or gradient, as ``optim.nonfinite`` says."""
        if self.optim.nonfinite == "stop":
            raise GvmlitError(f"{where}; stopping — the last checkpoint is kept (lower model.optim.lr, or set model.optim.nonfinite=skip)")
        self.skipped_batches += 1
        log.warning("%s; batch skipped (%d so far)", where, self.skipped_batches)
        self.log("train/skipped_batches", float(self.skipped_batches))
        return None

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=float(self.optim.lr), weight_decay=float(self.optim.weight_decay))  # plain floats: checkpoints load weights-only
        if self.optim.warmup_steps <= 0:
            return optimizer
        warmup = self.optim.warmup_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def apply_optimizer_settings(self) -> None:
        """After a resume with changed settings: the optimiser state came back with the checkpoint's learning
        rate and weight decay; the run's own apply from here on (a warm-up schedule keeps its place)."""
        for config in self.trainer.lr_scheduler_configs:
            config.scheduler.base_lrs = [float(self.optim.lr)] * len(config.scheduler.base_lrs)
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                factor = group["lr"] / group.get("initial_lr", group["lr"]) if group.get("initial_lr") else 1.0
                group["lr"], group["weight_decay"] = float(self.optim.lr) * factor, float(self.optim.weight_decay)
                if "initial_lr" in group:
                    group["initial_lr"] = float(self.optim.lr)

    def on_before_optimizer_step(self, optimizer) -> None:
        total = gradient_norm(self.model)
        if total is None:
            return
        if not torch.isfinite(total):
            for p in self.model.parameters():  # AdamW leaves parameters without a gradient untouched
                p.grad = None
            self._nonfinite(f"train/grad_norm is {float(total)} at step {self.global_step} (epoch {self.current_epoch})")
            return
        self.log("train/grad_norm", total)

    # ------------------------------------------------------------------ evaluation
    def start_evaluation(self, split: str) -> bool:
        """Before an evaluation: the metrics, the policy to sample from and the engine's weights (the
        evaluation's only collectives before its end, so ranks may hold different numbers of batches).
        False when the split has no problems (nothing to evaluate)."""
        problems = self.data.evaluation_prompts(split)
        if not problems:
            return False
        self.evaluator.start(problems, self.device)
        self._eval_policy = [self.rollout_policy(self.eval_sampler)]
        self.eval_sampler.prepare(self._eval_policy[0])
        return True

    def finish_evaluation(self, stage: str) -> Evaluation | None:
        if not self._eval_policy:
            return None
        self.eval_sampler.release()
        self._eval_policy = []
        ours = self.budget.local["eval"]
        self.evaluator.count(ours.samples - self._eval_counted[0], ours.tokens - self._eval_counted[1])
        self.budget.add_total("eval", *self.evaluator.cost.compute())
        self._eval_counted = (ours.samples, ours.tokens)
        # `gvmlit validate|test --ckpt_path …` restores the weights but not the loop: report the checkpoint's step
        step = self.global_step if self.trainer.state.fn == "fit" or self._checkpoint_step is None else self._checkpoint_step
        evaluation = self.evaluator.finish(stage, step, self.budget.training_samples)
        log.info(
            "%s at step %d (%d samples generated): %s", "test" if stage == "test" else "validation", step,
            evaluation.samples, ", ".join(f"{k} {v:.3f}" for k, v in evaluation.summary.items()),
        )  # fmt: skip
        return evaluation

    _eval_counted: tuple[int, int] = (0, 0)

    def on_validation_epoch_start(self) -> None:
        if not self.trainer.sanity_checking:  # the module evaluates the starting policy itself (on_fit_start)
            self.start_evaluation("test" if self.trainer.testing else "val")

    def validation_step(self, batch: list[Prompt], batch_idx: int) -> None:
        if self.trainer.sanity_checking or not batch or not self._eval_policy:
            return
        # its own random stream (keyed on the batch's first problem): evaluation neither consumes nor depends on training's
        with self.random_stream(f"eval:{batch[0].record.uid}"):
            self.evaluator.score(self.collector, self._eval_policy[0], batch, self.eval_sampler)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        stopping.check("evaluating")  # every rank is here: a stop asked for during evaluation is honoured now
        evaluation = self.finish_evaluation("test" if self.trainer.testing else "val")
        if evaluation is None:
            return
        self.last_evaluation = evaluation
        for name, value in self.last_evaluation.summary.items():  # through self.log: checkpoint callbacks can monitor
            # identical on every rank (the metrics are synced); sync_dist only silences Lightning
            self.log(f"{self.last_evaluation.stage}/{name}", value, logger=False, prog_bar=name == "accuracy", sync_dist=world()[1] > 1)

    on_test_epoch_start = on_validation_epoch_start
    test_step = validation_step
    on_test_epoch_end = on_validation_epoch_end

    def configure_callbacks(self):
        from gvmlit.callbacks import GradientSpread, RolloutLogger
        from gvmlit.checkpoints import SafeCheckpoints

        return [RolloutLogger(), SafeCheckpoints(), GradientSpread()]

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Besides Lightning's state: RNG states, what produced the run, what export needs, and the
        rollout state (budget counters, verifier outcomes, allocator statistics)."""
        if self._export_description is None:  # the config and tokenizer files never change during a run
            self._export_description = describe_policy(self.model, self.tokenizer)
        if not is_sharded(self.model):  # LoRA: only the weights that train (a sharded checkpoint keeps all: Lightning's loader wants them)
            self.policy.trim_checkpoint(checkpoint)
        checkpoint["gvmlit"] = {
            "rng": rng_state(),
            "run_seed": self._run_seed,
            "produced_by": describe_learner(self, self._datamodule(), self._run_seed),  # what resume checks (gvmlit.resume)
            "policy": describe_component(self.policy),
            "reference": describe_component(self.policy) if self.loss.kl_coef > 0 else None,
            "skipped_batches": self.skipped_batches,
            "export": self._export_description,  # `gvmlit export` needs only the checkpoint
            "rollout": self.rollout_state(),
        }

    def _datamodule(self):
        return self.trainer.datamodule if self._trainer is not None else None

    def rollout_state(self) -> dict:
        return {"budget": self.budget.state_dict(), "verifier": self.verifier.state_dict()}

    def load_rollout_state(self, state: dict) -> None:
        self.budget.load_state_dict(state.get("budget", {}))
        self.verifier.load_state_dict(state.get("verifier", {}))

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._checkpoint_step = checkpoint.get("global_step")
        state = checkpoint.get("gvmlit")
        if state is None:
            return
        self.policy.expect_checkpoint(checkpoint, self)  # LoRA: the base weights come from the policy itself
        if self._trainer is not None and self.trainer.state.fn == "fit":  # evaluating a checkpoint needs only its weights
            current = describe_learner(self, self._datamodule(), self._run_seed)
            check_resume(state.get("produced_by"), current, self.resume_with_changes, log)
            self._resumed_with_changes = self.resume_with_changes
        if state["reference"] is not None and state["reference"] != describe_component(self.policy):
            raise GvmlitError(
                f"the checkpoint's KL reference policy was {state['reference']}, but this run's policy is "
                f"{describe_component(self.policy)}: resume with the policy the run started from"
            )
        restore_rng(state["rng"])
        self.skipped_batches = state.get("skipped_batches", 0)
        self.load_rollout_state(state.get("rollout", {}))
        budget = self.budget.local["eval"]
        self._eval_counted = (budget.samples, budget.tokens)


def gradient_norm(model: torch.nn.Module) -> torch.Tensor | None:
    """The global L2 norm of ``model``'s gradients (None without any), also when they are sharded
    DTensors: torch's ``get_total_norm`` then returns a DTensor whose full value is the global norm."""
    from torch.distributed.tensor import DTensor

    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return None
    total = torch.nn.utils.get_total_norm(grads)
    return total.full_tensor() if isinstance(total, DTensor) else total


def _frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model).eval().requires_grad_(False)
