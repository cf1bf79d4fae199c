"""The training loop: the recipe documented for the original work, resumable, on one or many GPUs.

Adam (lr 3e-4, weight decay 1e-5), poly schedule (power 0.9), random scale + crop + flip,
cross-entropy ignoring 255, output stride 8. Under ``torchrun`` it runs DistributedDataParallel
(NCCL on GPUs, gloo on CPUs). A run's state (model, optimiser, schedule, step, best mIoU, log) is
written atomically to ``OUTPUT/last.pt``; rerunning the same command continues from it exactly:
batches are a function of (seed, step), and so is dropout.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..atomic import atomic_write
from ..datasets import BagDataset, CityscapesDataset
from ..errors import CheckpointError, DenseASPPError
from ..eval.evaluate import dataset_samples, evaluate
from ..inference import Segmenter, load_engine, resolve_device
from ..inference import preprocess
from ..labels import IGNORE_INDEX, LabelSet, get_label_set
from ..model import build_model, read_training_state, save_checkpoint, save_safetensors
from .augmentation import Augmentation, TrainingCrops
from .config import TrainConfig
from .initialise import initialise

LAST = "last.pt"
BEST = "best.pt"
# What last.pt holds beside the weights: plain values and optimiser tensors, so weights_only reads it.
_STATE_KEYS = ("config", "optimizer", "schedule", "scaler", "step", "best_miou", "log")
# Crops for BatchNorm re-estimation come from this pseudo-epoch, never used for training.
_BN_EPOCH = 10**6


class StepBatches(torch.utils.data.Sampler):
    """Batches of (epoch, index) for steps ``start``.. onwards: each epoch a seeded permutation, split
    across ranks, so a step's batch depends only on (seed, step), not on when the run was resumed."""

    def __init__(self, size: int, batch: int, seed: int, start: int, steps: int, rank: int = 0, world: int = 1) -> None:
        self.size, self.batch, self.seed, self.start, self.steps, self.rank, self.world = size, batch, seed, start, steps, rank, world
        self.per_epoch = size // (batch * world)
        if self.per_epoch < 1:
            raise DenseASPPError(f"{size} training images cannot fill one batch of {batch} x {world} processes")

    def __len__(self) -> int:
        return max(self.steps - self.start, 0)

    def __iter__(self):
        for step in range(self.start, self.steps):
            epoch, offset = divmod(step, self.per_epoch)
            order = np.random.default_rng((self.seed, epoch)).permutation(self.size)
            first = (offset * self.world + self.rank) * self.batch
            yield [(epoch, int(index)) for index in order[first : first + self.batch]]


_clock = time.monotonic  # what --time-limit is measured with (a test's clock can stand in)


def hard_pixel_loss(logits: torch.Tensor, labels: torch.Tensor, fraction: float) -> torch.Tensor:
    """Cross-entropy averaged over the hardest ``fraction`` of the labelled pixels (OHEM).

    Thin classes (poles, signs, lights, people) are a few percent of the pixels: once road and
    sky are easy, averaging over every pixel lets them vanish from the gradient.
    """
    per_pixel = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="none")
    labelled = per_pixel[labels != IGNORE_INDEX]
    if fraction >= 1.0 or labelled.numel() == 0:
        return labelled.mean() if labelled.numel() else per_pixel.sum() * 0.0
    kept = max(1, int(round(fraction * labelled.numel())))
    return labelled.topk(kept, sorted=False).values.mean()


def load_dataset(config: TrainConfig, label_set: LabelSet, split: str, data: str) -> CityscapesDataset | BagDataset:
    path = Path(data)
    if path.is_dir() and (path / "leftImg8bit").is_dir():
        return CityscapesDataset(path, split, label_set)
    if not config.image_topic or not config.label_topic:
        raise DenseASPPError(
            f"{data} is not a Cityscapes-layout folder (no leftImg8bit/): for a bag give --image-topic and --label-topic"
        )
    return BagDataset(path, config.image_topic, config.label_topic, label_set, config.label_format)


class Trainer:
    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = resolve_device(config.device)
        if device.type == "cuda" and self.world > 1:
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        self.device = device
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        self.output = Path(config.output)
        self.label_set = get_label_set(config.labels)
        torch.manual_seed(config.seed)  # the initial weights are part of the run: same seed, same run
        self.model = build_model(config.model, self.label_set.num_classes).to(device, memory_format=torch.channels_last)
        self.model.input_size = tuple(config.input_size) or None  # validation's Segmenter and every saved checkpoint take it from here
        self.model.align_corners = not config.half_pixel
        self.train_set = load_dataset(config, self.label_set, config.train_split, config.data)
        self.val_set = (
            load_dataset(config, self.label_set, config.val_split, config.val_data or config.data)
            if config.val_every > 0 else None
        )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: max(1.0 - step / config.steps, 0.0) ** config.poly_power
        )
        self.amp = config.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.step = 0
        self.best_miou = -1.0
        self.log: list[dict] = []
        self._resume_or_initialise()
        self.network: nn.Module = self.model
        if self.world > 1:
            self.network = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.crops = TrainingCrops(self.train_set, Augmentation(config.crop, config.scale, config.flip, config.class_uniform), config.seed)

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def say(self, text: str) -> None:
        if self.leader:
            tqdm.write(text)

    def _resume_or_initialise(self) -> None:
        last = self.output / LAST
        if last.is_file() and self.config.resume:
            state = read_training_state(last)  # untrusted like any checkpoint: OUTPUT may hold a planted file
            missing = [key for key in _STATE_KEYS if key not in state]
            if missing:
                raise CheckpointError(f"{last} is not a training state of this project: it lacks {', '.join(missing)}")
            # A run saved before --input-size (--half-pixel) existed ran at each image's own size (aligned corners).
            saved = {"input_size": (), "half_pixel": False, **state["config"]}
            saved["input_size"] = tuple(saved["input_size"])
            for key in ("model", "labels", "steps", "batch_size", "seed", "input_size", "half_pixel"):
                if saved.get(key) != getattr(self.config, key):
                    raise CheckpointError(
                        f"{last} belongs to a run with {key}={saved.get(key)!r}, not {getattr(self.config, key)!r}: "
                        "use another --output, or --no-resume to start over there"
                    )
            self.model.load_state_dict(state["state_dict"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
            self.scaler.load_state_dict(state["scaler"])
            self.step, self.best_miou, self.log = state["step"], state["best_miou"], state["log"]
            self.say(f"resumed {last} at step {self.step} of {self.config.steps}")
            return
        report = initialise(self.model, self.config.init_checkpoint, self.config.imagenet)
        self.say(report.summary())

    def run(self) -> dict:
        config = self.config
        if self.leader:
            self.output.mkdir(parents=True, exist_ok=True)
        crops = self.crops
        batches = StepBatches(len(self.train_set), config.batch_size, config.seed, self.step, config.steps, self.rank, self.world)
        loader = DataLoader(
            crops, batch_sampler=batches, num_workers=config.workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
        )
        bar = tqdm(total=config.steps, initial=self.step, desc="train", unit="step", disable=not self.leader, dynamic_ncols=True)
        self.model.train()
        window_start, window_images, losses = time.perf_counter(), 0, []
        deadline = _clock() + 60 * config.time_limit if config.time_limit else None
        try:
            for images, labels in loader:
                loss = self._train_step(images, labels)
                self.step += 1
                last = self.step == config.steps or self._out_of_time(deadline)
                losses.append(loss)
                window_images += images.shape[0] * self.world
                bar.update(1)
                if self.step % config.log_every == 0 or last:
                    elapsed = time.perf_counter() - window_start
                    row = {
                        "step": self.step, "loss": float(np.mean(losses)), "lr": self.schedule.get_last_lr()[0],
                        "images_per_second": window_images / elapsed,
                    }
                    self.log.append(row)
                    bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{row['lr']:.2e}", img_s=f"{row['images_per_second']:.1f}")
                    window_start, window_images, losses = time.perf_counter(), 0, []
                if self.val_set is not None and (self.step % config.val_every == 0 or last):
                    self._validate()
                if self.step % config.checkpoint_every == 0 or last:
                    self._save()
                if last and self.step < config.steps:
                    self.say(f"time limit of {config.time_limit:g} min reached at step {self.step}: saved; run it again to go on")
                    break
        except KeyboardInterrupt:
            self._save()
            self.say(f"interrupted at step {self.step}: saved {self.output / LAST}; run the same command to continue")
            raise
        finally:
            bar.close()
        self._finish()
        return {"step": self.step, "best_miou": self.best_miou, "output": str(self.output)}

    def _out_of_time(self, deadline: float | None) -> bool:
        """Past the time limit, as every process agrees (the first one's clock decides for all)."""
        if deadline is None:
            return False
        flag = torch.tensor([_clock() > deadline], dtype=torch.int32, device=self.device)
        if self.world > 1:
            dist.broadcast(flag, 0)
        return bool(flag.item())

    def _train_step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        config = self.config
        torch.manual_seed(config.seed * 1_000_003 + self.step * 101 + self.rank)  # dropout: a function of the step
        images = preprocess(images, self.device)
        labels = labels.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            logits = self.network(images)
            loss = hard_pixel_loss(logits.float(), labels, config.hard_pixels)
        if not torch.isfinite(loss):
            raise DenseASPPError(f"loss became {loss.item()} at step {self.step}: lower --lr or check the labels")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.step()
        return float(loss.detach())

    def _recalibrate_batchnorm(self) -> None:
        """Re-estimate BatchNorm running statistics with the current weights (cumulative average).

        The release's ASPP BatchNorms use momentum 0.0003: their running statistics need tens of
        thousands of steps to follow the weights, so after a short run or fine-tune the network
        would be evaluated (and deployed) with stale statistics. Training itself uses batch
        statistics and is unaffected.
        """
        if self.config.bn_batches < 1:
            return
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [norm.momentum for norm in norms]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
        self.model.train()
        size = len(self.train_set)
        with torch.no_grad():
            for batch in range(self.config.bn_batches):
                items = [self.crops[(_BN_EPOCH, (batch * self.config.batch_size + i) % size)] for i in range(self.config.batch_size)]
                self.model(preprocess(torch.stack([image for image, _ in items]), self.device))
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum

    def _validate(self) -> None:
        """mIoU over the validation set as deployment computes it: ``evaluate`` with a Segmenter on a
        copy of the model (training goes on with this one); each rank a share, summed."""
        self._recalibrate_batchnorm()
        # One full-size image per forward pass: a batch of them could need more memory than training.
        segmenter = Segmenter(self.model, device=str(self.device), precision="fp32", max_batch=1)
        share = range(self.rank, len(self.val_set), self.world)
        result = evaluate(dataset_samples(self.val_set, share), segmenter, self.label_set, total=len(share), progress=self.leader)
        if result.interrupted:
            raise KeyboardInterrupt  # run() saves last.pt, as for a Ctrl-C during a training step
        if not result.complete:
            raise DenseASPPError(f"validation at step {self.step} failed: {'; '.join(result.problems)}")
        matrix = result.matrix
        if self.world > 1:
            counts = torch.from_numpy(matrix.counts).to(self.device)
            dist.all_reduce(counts)
            matrix.counts = counts.cpu().numpy()
        miou = matrix.miou()
        self.log.append({"step": self.step, "val_miou": miou, "val_pixel_accuracy": matrix.pixel_accuracy()})
        improved = miou > self.best_miou
        if improved:
            self.best_miou = miou
            if self.leader:
                save_checkpoint(self.model, self.output / BEST, step=self.step, miou=miou, labels=self.config.labels)
        self.say(f"step {self.step}: validation mIoU {miou:.4f}" + (" (best so far, saved best.pt)" if improved else ""))

    def _save(self) -> None:
        if not self.leader:
            return
        save_checkpoint(
            self.model, self.output / LAST, config=asdict(self.config), optimizer=self.optimizer.state_dict(),
            schedule=self.schedule.state_dict(), scaler=self.scaler.state_dict(), step=self.step,
            best_miou=self.best_miou, log=self.log,
        )
        self._write_log()

    def _finish(self) -> None:
        if self.val_set is None:  # validation already re-estimated the statistics of the last step
            self._recalibrate_batchnorm()
        if not self.leader:
            return
        save_safetensors(self.model, self.output / "final.safetensors", step=str(self.step), labels=self.config.labels)
        if (self.output / BEST).is_file():
            # Loaded as every consumer loads weights, so a best.pt deployment would refuse fails here.
            best = load_engine(self.output / BEST, self.config.model, self.label_set, device="cpu", precision="fp32")
            save_safetensors(best.model, self.output / "best.safetensors", miou=f"{self.best_miou:.4f}", labels=self.config.labels)
        self._write_log()
        self.say(f"done: {self.step} steps, best validation mIoU {self.best_miou:.4f}; results in {self.output}/")

    def _write_log(self) -> None:
        """log.csv (one row per logged step), log.json, and PNG plots of the loss and validation mIoU."""
        output = self.output
        columns = ["step", "loss", "lr", "images_per_second", "val_miou", "val_pixel_accuracy"]

        def write_csv(target: str) -> None:
            with open(target, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, columns)
                writer.writeheader()
                writer.writerows(self.log)

        atomic_write(output / "log.csv", write_csv)
        text = json.dumps({"config": asdict(self.config), "log": self.log}, indent=1)
        atomic_write(output / "log.json", lambda target: Path(target).write_text(text))
        plot_log(self.log, output / "training.png")


def plot_log(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = [(r["step"], r["loss"]) for r in log if "loss" in r]
    mious = [(r["step"], r["val_miou"]) for r in log if "val_miou" in r and not math.isnan(r["val_miou"])]
    figure, (loss_axis, miou_axis) = plt.subplots(1, 2, figsize=(11, 4))
    if losses:
        loss_axis.plot(*zip(*losses), color="tab:blue")
    loss_axis.set(xlabel="step", ylabel="training loss (cross-entropy)", title="loss")
    loss_axis.grid(alpha=0.3)
    if mious:
        miou_axis.plot(*zip(*mious), marker="o", color="tab:green")
    miou_axis.set(xlabel="step", ylabel="validation mIoU", title="validation mIoU", ylim=(0, 1))
    miou_axis.grid(alpha=0.3)
    figure.tight_layout()
    atomic_write(path, lambda target: figure.savefig(target, format="png", dpi=100))
    plt.close(figure)


def train(config: TrainConfig) -> dict:
    trainer = Trainer(config)
    try:
        return trainer.run()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
