"""PyTorch side of the semaug speed comparison: the same diffusers UNet2DModel, same work.

Times, on CPU with a fixed thread count (2 by default, as on the project's machine):

* ``train``: one conditional flow-matching step as semaug's trainer does it
  (crates/models/src/flow_training.rs): per-sample logit-normal sigma, noise,
  ``x_sigma = (1 - sigma) x0 + sigma eps``, forward with timesteps ``1000 sigma`` and class
  labels (10 % dropped to the null class), MSE against the velocity ``eps - x0``, backward,
  gradient-norm clipping at 1.0, AdamW (lr 2e-4, betas 0.9/0.999, eps 1e-8, no weight decay)
  and an EMA update of the weights (decay 0.999). ``--bare`` leaves out clipping and EMA.
* ``infer``: one forward pass under ``torch.no_grad()`` at timestep 500, null class.

Warm-up steps first, then ``--iters`` timed steps; the last line is ``images_per_s: N``.

Allocator: semaug's binary tells glibc's malloc to keep freed memory (no mmap'd chunks, no
trimming), which saves re-faulting the pages of every big tensor on every step. This script
gives PyTorch the same setting (``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:...``, applied by
re-running itself) unless ``--default-malloc`` is given; it makes PyTorch's forward ~1.3x
faster on the project's machine.

The model is built from a diffusers ``config.json``: ``bench/small-config.json`` is the one
semaug's ``small`` preset writes (``semaug train`` exports it as ``<out>/model/config.json``).

Exact commands (from the repository root, venv with torch 2.x and diffusers, see README.md):

    python bench/torch_unet.py train --batch 64 --iters 5
    python bench/torch_unet.py infer --batch 64 --iters 5
"""

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import UNet2DModel

DEFAULT_CONFIG = Path(__file__).resolve().parent / "small-config.json"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["train", "infer"])
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                   help="diffusers config.json of the UNet2DModel (default: the small preset)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--iters", type=int, default=5, help="timed iterations")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bare", action="store_true",
                   help="train: forward + loss + backward + AdamW only (no clipping, no EMA)")
    p.add_argument("--flops", action="store_true",
                   help="also count the step's convolution and matmul FLOPs (PyTorch's "
                        "FlopCounterMode) and print the rate they were done at")
    p.add_argument("--default-malloc", action="store_true",
                   help="leave glibc's malloc at its defaults (see the module doc)")
    return p.parse_args()


RETAIN_FREED_MEMORY = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967295"


def retain_freed_memory():
    """Re-run this process with glibc told to keep freed memory (as semaug does)."""
    if os.environ.get("GLIBC_TUNABLES") != RETAIN_FREED_MEMORY:
        env = dict(os.environ, GLIBC_TUNABLES=RETAIN_FREED_MEMORY)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def build_model(config_path: Path) -> UNet2DModel:
    config = json.loads(config_path.read_text())
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    torch.manual_seed(0)
    return UNet2DModel(**config)


def image_size(model: UNet2DModel) -> int:
    size = model.config.sample_size
    return size if isinstance(size, int) else size[0]


class FlowStep:
    """One conditional flow-matching training step (sigma = 1 is noise, v = eps - x0)."""

    def __init__(self, model, batch, bare):
        self.model = model
        self.batch = batch
        self.bare = bare
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4, betas=(0.9, 0.999),
                                           eps=1e-8, weight_decay=0.0)
        self.ema = None if bare else copy.deepcopy(model).requires_grad_(False)
        self.null = model.config.num_class_embeds - 1
        size = image_size(model)
        # The images themselves do not change the cost: random data in [-1, 1].
        self.x0 = torch.rand(batch, model.config.in_channels, size, size) * 2 - 1
        self.labels = torch.arange(batch) % self.null

    def __call__(self):
        b = self.batch
        sigma = torch.sigmoid(torch.randn(b))
        keep = torch.rand(b) >= 0.1
        labels = torch.where(keep, self.labels, torch.full_like(self.labels, self.null))
        eps = torch.randn_like(self.x0)
        s = sigma.view(b, 1, 1, 1)
        x_sigma = (1 - s) * self.x0 + s * eps
        target = eps - self.x0
        v = self.model(x_sigma, sigma * 1000, class_labels=labels).sample
        loss = F.mse_loss(v, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if not self.bare:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        if self.ema is not None:
            with torch.no_grad():
                for e, p in zip(self.ema.parameters(), self.model.parameters()):
                    e.lerp_(p, 1 - 0.999)
        return loss.item()


class Forward:
    """One no-grad forward pass at a mid-range timestep with the null class."""

    def __init__(self, model, batch):
        self.model = model.eval()
        size = image_size(model)
        gen = torch.Generator().manual_seed(1)
        self.x = torch.randn(batch, model.config.in_channels, size, size, generator=gen)
        self.t = torch.tensor([500.0])
        self.labels = torch.full((batch,), model.config.num_class_embeds - 1)

    def __call__(self):
        with torch.no_grad():
            return self.model(self.x, self.t, class_labels=self.labels).sample


def main():
    args = parse_args()
    if not args.default_malloc:
        retain_freed_memory()
    torch.set_num_threads(args.threads)
    model = build_model(args.config)
    params = sum(p.numel() for p in model.parameters())
    step = FlowStep(model, args.batch, args.bare) if args.what == "train" else Forward(model, args.batch)
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    total = sum(times)
    print(f"torch {torch.__version__}, model {args.config.name} ({params} parameters), "
          f"batch {args.batch}, {torch.get_num_threads()} threads, {args.iters} x {args.what}"
          f"{' (bare)' if args.bare else ''}"
          f"{', default malloc' if args.default_malloc else ''}, best {min(times) * 1e3:.0f} ms, "
          f"mean {total / len(times) * 1e3:.0f} ms")
    if args.flops:
        from torch.utils.flop_counter import FlopCounterMode
        with FlopCounterMode(display=False) as counter:
            step()
        gflop = counter.get_total_flops() / 1e9
        print(f"{gflop:.1f} GFLOP per {args.what} step (conv + matmul), "
              f"{gflop / (total / len(times)):.0f} GFLOP/s at the mean time")
    print(f"images_per_s: {args.iters * args.batch / total:.2f}")


if __name__ == "__main__":
    main()
