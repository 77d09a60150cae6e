"""How a worker holds, steps and saves its model: plain/DDP (Ray's prepare_model) or DeepSpeed.

Both expose the same small interface to the loop: `model(...)` for the forward pass, `step(loss)`
(backward, clipping, optimizer and scheduler), `lr`, `save(dir)`, `load(dir)` and
`export_state_dict()` (full fp32 weights for evaluation/registration; every rank calls it).
"""

from __future__ import annotations

import contextlib
import os

import torch

from jobs.training.config import TrainConfig
from jobs.training.schedule import warmup_cosine


class DDPStrategy:
    """One process or Ray Train's DDP (prepare_model); bf16 via torch.autocast."""

    name = "ddp"

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, distributed: bool, device="cpu"):
        optim = cfg.optim
        self.bf16 = bool(cfg.train.bf16)
        self.device = torch.device(device)
        self.grad_clip = float(optim.grad_clip)
        if distributed:
            import ray.train.torch

            self.model = ray.train.torch.prepare_model(model)
        else:
            self.model = model.to(self.device)
        self.module = getattr(self.model, "module", self.model)
        self.optimizer = torch.optim.AdamW(
            self.module.parameters(), lr=optim.lr, betas=(optim.beta1, optim.beta2),
            eps=optim.eps, weight_decay=optim.weight_decay)
        self.scheduler = warmup_cosine(self.optimizer, optim.warmup_steps,
                                       cfg.train.max_steps, optim.min_lr_ratio)
        self.input_dtype = torch.float32

    def autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def step(self, loss: torch.Tensor) -> tuple[bool, float]:
        """Backward + update; returns (applied, grad norm). Non-finite gradients skip the update."""
        loss.backward()
        if self.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip)
        else:
            norm = torch.nn.utils.get_total_norm(
                [p.grad for p in self.module.parameters() if p.grad is not None])
        if not torch.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            return False, float(norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return True, float(norm)

    def skip(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def save(self, directory: str, rank: int) -> list[str]:
        """Files this rank wrote into `directory` (only rank 0 writes for DDP)."""
        if rank != 0:
            return []
        torch.save({"optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict()},
                   os.path.join(directory, "train_state.pt"))
        return ["train_state.pt"]

    def load(self, directory: str) -> None:
        state = torch.load(os.path.join(directory, "train_state.pt"), map_location=self.device,
                           weights_only=False)
        self.module.load_state_dict(torch.load(os.path.join(directory, "model.pt"),
                                               map_location=self.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def export_state_dict(self) -> dict:
        return {k: v.detach().float().cpu() if v.is_floating_point() else v.cpu()
                for k, v in self.module.state_dict().items()}


class DeepSpeedStrategy:
    """DeepSpeed engine built inside the worker (reuses Ray's process group); ZeRO 1/2/3, bf16."""

    name = "deepspeed"

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, distributed: bool, device="cpu"):
        if not cfg.train.use_gpu:
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        import deepspeed
        import deepspeed.ops

        if not cfg.train.use_gpu:
            # On CPU, deepspeed.initialize JIT-compiles a shared-memory all-reduce (C++, 35 s on 2
            # cores, again whenever the venv's path or files change: a clean clone always builds
            # it) after a compiler probe of every op. Only inference_all_reduce uses it; training
            # reduces through torch.distributed (gloo). Declared unavailable: no probe, no build.
            vars(deepspeed.ops).setdefault("__compatible_ops__", {})["deepspeed_shm_comm"] = False

        optim = cfg.optim
        train = cfg.train
        self.stage = int(train.zero_stage)
        ds_config = {
            "train_micro_batch_size_per_gpu": int(cfg.data.batch_size),
            "gradient_accumulation_steps": 1,
            "gradient_clipping": float(optim.grad_clip),
            "bf16": {"enabled": bool(train.bf16)},
            "zero_optimization": {"stage": self.stage},
            # torch_adam: the PyTorch AdamW instead of DeepSpeed's fused op (a 31 s JIT compile).
            "optimizer": {"type": "AdamW", "params": {
                "lr": optim.lr, "betas": [optim.beta1, optim.beta2], "eps": optim.eps,
                "weight_decay": optim.weight_decay, "torch_adam": True}},
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, model_parameters=[p for p in model.parameters() if p.requires_grad],
            config=ds_config,
            lr_scheduler=lambda opt: warmup_cosine(opt, optim.warmup_steps, train.max_steps,
                                                   optim.min_lr_ratio))
        self.model = self.engine
        self.module = self.engine.module
        self.input_dtype = torch.bfloat16 if train.bf16 else torch.float32
        self.device = self.engine.device

    def autocast(self):
        return contextlib.nullcontext()  # DeepSpeed holds bf16 weights itself

    def step(self, loss: torch.Tensor) -> tuple[bool, float]:
        self.engine.backward(loss)
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        return True, float(norm) if norm is not None else float("nan")

    def skip(self) -> None:
        self.engine.zero_grad()

    @property
    def lr(self) -> float:
        return float(self.engine.get_lr()[0])

    def save(self, directory: str, rank: int) -> list[str]:
        """Every rank writes its ZeRO shard (collective)."""
        before = set(_walk(directory))
        self.engine.save_checkpoint(directory, tag="deepspeed")
        return sorted(set(_walk(directory)) - before)

    def load(self, directory: str) -> None:
        path, _ = self.engine.load_checkpoint(directory, tag="deepspeed")
        if path is None:
            raise RuntimeError(f"no DeepSpeed state in checkpoint {directory}")

    def export_state_dict(self) -> dict:
        if self.stage == 3:  # parameters are partitioned: gather them (collective)
            state = self.engine._zero3_consolidated_16bit_state_dict() or {}
        else:
            state = self.module.state_dict()
        return {k: v.detach().float().cpu() if v.is_floating_point() else v.cpu()
                for k, v in state.items()}


def _walk(directory: str) -> list[str]:
    out = []
    for root, _, files in os.walk(directory):
        out += [os.path.relpath(os.path.join(root, f), directory) for f in files]
    return out


def make_strategy(model, cfg, distributed: bool, device="cpu"):
    cls = DeepSpeedStrategy if cfg.train.strategy == "deepspeed" else DDPStrategy
    return cls(model, cfg, distributed, device)
