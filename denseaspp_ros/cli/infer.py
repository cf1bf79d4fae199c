"""``denseaspp infer``: image files and folders in, PNG masks out, mirroring the input tree per kind."""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..declarations import add_flags
from ..serving.settings import NodeSettings
from ..errors import DenseASPPError
from ..imageio import ImageItem, find_images, read_bgr, write_png
from ..inference import Segmentation, Segmenter
from ..labels import LabelSet, get_label_set
from . import engine_options
from .arguments import _size, check_writable

SAVE_KINDS = ("trainid", "labelid", "color", "overlay", "confidence")


def register(commands) -> None:
    infer = commands.add_parser("infer", help="segment image files and folders into PNG masks")
    infer.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    infer.add_argument("--output", type=Path, required=True, help="folder for the results, one subfolder per kind")
    engine_options._add_engine_options(infer)
    add_flags(infer, NodeSettings, ["model.multiscale"])
    infer.add_argument("--input-size", type=_size, metavar="HxW", help="resize the network input to HxW (masks keep the image size); default: the size the weights declare, else the image's")
    infer.add_argument("--save", type=_save_kinds, default=("labelid", "color"), help=f"comma list of {', '.join(SAVE_KINDS)}")
    infer.set_defaults(run=run_infer)


def _save_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(kind.strip() for kind in text.split(",") if kind.strip())
    unknown = [kind for kind in kinds if kind not in SAVE_KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"--save takes a comma list of {', '.join(SAVE_KINDS)}; got {text!r}")
    return kinds


def run_infer(args: argparse.Namespace) -> int:
    items = find_images(args.inputs, exclude=args.output)  # every input is checked before anything is loaded or written
    if args.output.exists() and not args.output.is_dir():
        raise DenseASPPError(f"--output {args.output} exists and is not a folder")
    labels = get_label_set(args.labels)
    if "labelid" in args.save and labels.label_ids is None:
        raise DenseASPPError(f"label set {labels.name!r} defines no label ids; drop labelid from --save")
    check_writable(args.output, "--output")
    segmenter = engine_options._build_segmenter(args, multiscale=args.multiscale, input_size=args.input_size)
    start = time.perf_counter()
    failures = _segment_files(items, segmenter, labels, args)
    elapsed = time.perf_counter() - start
    done = len(items) - len(failures)
    for failure in failures:
        print(f"skipped: {failure}", file=sys.stderr)
    print(
        f"segmented {done} of {len(items)} images in {elapsed:.1f} s ({done / elapsed:.2f} img/s) "
        f"with {segmenter.model_name} on {segmenter.device}; wrote {', '.join(args.save)} under {args.output}/"
    )
    return 1 if failures else 0


def _segment_files(items: list[ImageItem], segmenter: Segmenter, labels: LabelSet, args: argparse.Namespace) -> list[str]:
    """Segment ``items`` batch by batch, reading the next batch and writing the last while the model runs;
    returns what was skipped and why (unreadable images, non-finite logits)."""
    want_confidence = "confidence" in args.save
    batches = [items[i : i + args.batch] for i in range(0, len(items), args.batch)]
    failures: list[str] = []

    def read_batch(batch: list[ImageItem]) -> list[tuple[ImageItem, np.ndarray]]:
        loaded = []
        for item in batch:
            try:
                loaded.append((item, read_bgr(item.source, args.max_image_pixels)))
            except DenseASPPError as error:
                failures.append(str(error))
        return loaded

    with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(2) as writer, tqdm(total=len(items), unit="img") as bar:
        writes: list[Future] = []
        next_batch = reader.submit(read_batch, batches[0])
        for index in range(len(batches)):
            loaded = next_batch.result()
            if index + 1 < len(batches):
                next_batch = reader.submit(read_batch, batches[index + 1])  # read ahead while the model runs
            results = segmenter.segment([image for _, image in loaded], bgr=True, confidence=want_confidence)
            for (item, image), result in zip(loaded, results):
                if not result.finite:  # NaN/inf logits: no mask is better than a mask of garbage
                    failures.append(f"{item.source}: non-finite logits (NaN/inf), nothing written")
                    continue
                writes.append(writer.submit(_write_outputs, item, image, result, args.save, labels, args.output))
            bar.update(len(batches[index]))
        for write in writes:
            write.result()  # surfaces a failed write (e.g. disk full) as an error
    return failures


def _outputs(kind: str, item: ImageItem, output: Path) -> Path:
    # One folder per kind, so e.g. output/labelid is exactly what cityscapesScripts reads.
    return output / kind / item.relative.with_suffix(".png")


def _write_outputs(
    item: ImageItem, image_bgr: np.ndarray, result: Segmentation, kinds: tuple[str, ...], labels: LabelSet, output: Path
) -> None:
    for kind in kinds:
        if kind == "trainid":
            picture = result.train_ids
        elif kind == "labelid":
            picture = labels.to_label_ids(result.train_ids)
        elif kind == "color":
            picture = labels.colorize(result.train_ids)[..., ::-1]
        elif kind == "overlay":
            picture = labels.overlay(np.ascontiguousarray(image_bgr[..., ::-1]), result.train_ids)[..., ::-1]
        else:
            picture = result.confidence
        write_png(_outputs(kind, item, output), picture)
