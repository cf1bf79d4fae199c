"""The ``denseaspp`` command: ``infer`` on image files, ``convert`` checkpoints, ``bench`` the engine, ``synth`` data."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .atomic import atomic_write
from .errors import DenseASPPError
from .imageio import ImageItem, find_images, read_bgr, write_png
from .labels import LabelSet, get_label_set
from .image_messages import MAX_IMAGE_PIXELS
from .model import AUTO_MODEL, MODEL_NAMES, build_model, convert_checkpoint, find_published_weights
from .inference import Segmentation, Segmenter

SAVE_KINDS = ("trainid", "labelid", "color", "overlay", "confidence")
DEFAULT_MODEL = "DenseASPP161"


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 512x1024, got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return height, width


def _count(minimum: int):
    """An argparse type for integers >= ``minimum`` (a zero-iteration benchmark has no timings to report)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _save_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(kind.strip() for kind in text.split(",") if kind.strip())
    unknown = [kind for kind in kinds if kind not in SAVE_KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"--save takes a comma list of {', '.join(SAVE_KINDS)}; got {text!r}")
    return kinds


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, choices=(AUTO_MODEL, *MODEL_NAMES), help="network variant (auto: from --weights)"
    )
    parser.add_argument("--weights", type=Path, help="checkpoint: original .pkl, project .pt or .safetensors")
    parser.add_argument("--num-classes", type=int, default=19, help="classes the weights were trained for")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="auto", help="auto, fp32, fp16 or bf16 (the last two on CUDA)")
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="NHWC memory format (default; faster on CPUs and tensor cores)",
    )
    parser.add_argument("--batch", type=int, default=1, help="images per forward pass")
    parser.add_argument(
        "--max-image-pixels", type=_count(1), default=MAX_IMAGE_PIXELS,
        help="larger images (by the size their header declares) are refused before decoding (default 4096x4096)",
    )


def _build_segmenter(args: argparse.Namespace, **options: object) -> Segmenter:
    weights = args.weights or find_published_weights(args.model)
    if weights is None:
        print(
            f"warning: no --weights and no published {args.model} checkpoint under weights/: "
            "using random weights, the masks will be meaningless",
            file=sys.stderr,
        )
    model = build_model(args.model, args.num_classes, weights)
    return Segmenter(
        model,
        device=args.device,
        precision=args.precision,
        channels_last=args.channels_last,
        max_batch=args.batch,
        max_image_pixels=args.max_image_pixels,
        **options,
    )


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


def _check_writable(folder: Path, option: str) -> None:
    """Create ``folder`` and a file in it, then remove what this made: an unwritable destination fails
    before any work. Permission bits cannot tell (root, read-only mounts, a file where a folder goes)."""
    made = [path for path in (folder, *folder.parents) if not path.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=folder).close()
    except OSError as error:
        raise DenseASPPError(f"{option}: cannot write into {folder}: {error.strerror or error}") from None
    finally:
        for path in made:
            with suppress(OSError):
                path.rmdir()


def run_infer(args: argparse.Namespace) -> int:
    items = find_images(args.inputs, exclude=args.output)  # every input is checked before anything is loaded or written
    if args.output.exists() and not args.output.is_dir():
        raise DenseASPPError(f"--output {args.output} exists and is not a folder")
    labels = get_label_set(args.labels)
    if labels.num_classes != args.num_classes:
        raise DenseASPPError(f"label set {labels.name!r} has {labels.num_classes} classes, --num-classes is {args.num_classes}")
    if "labelid" in args.save and labels.label_ids is None:
        raise DenseASPPError(f"label set {labels.name!r} defines no label ids; drop labelid from --save")
    _check_writable(args.output, "--output")
    segmenter = _build_segmenter(args, multiscale=args.multiscale, input_size=args.input_size)
    want_confidence = "confidence" in args.save
    batches = [items[i : i + args.batch] for i in range(0, len(items), args.batch)]
    failures: list[str] = []
    start = time.perf_counter()

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
    elapsed = time.perf_counter() - start
    done = len(items) - len(failures)
    for failure in failures:
        print(f"skipped: {failure}", file=sys.stderr)
    print(
        f"segmented {done} of {len(items)} images in {elapsed:.1f} s ({done / elapsed:.2f} img/s) "
        f"with {args.model} on {segmenter.device}; wrote {', '.join(args.save)} under {args.output}/"
    )
    return 1 if failures else 0


def run_convert(args: argparse.Namespace) -> int:
    if args.target.suffix != ".safetensors":
        raise DenseASPPError(f"the output must end in .safetensors, got {args.target}")
    convert_checkpoint(args.source, args.target, args.model, args.num_classes, half=args.half)
    precision = "float16" if args.half else "float32"
    print(f"wrote {args.target} ({args.model}, {args.num_classes} classes, {precision}) from {args.source}")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from .inference.benchmark import format_report, run_benchmark

    segmenter = _build_segmenter(args)
    report = run_benchmark(segmenter, args.model, args.size, args.batch, args.warmup, args.iterations)
    print(format_report(report))
    if args.json:
        text = json.dumps(report.to_dict(), indent=2) + "\n"
        atomic_write(args.json, lambda temporary: Path(temporary).write_text(text))
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from .synth.drive import DriveConfig
    from .synth.outputs import write_drive

    if args.output is None and args.bag is None:
        raise DenseASPPError("nothing to write: give --output DIR (Cityscapes layout), --bag PATH, or both")
    config = DriveConfig(frames=args.frames, seed=args.seed, size=args.size, fps=args.fps, speed=args.speed)
    start = time.perf_counter()
    count = write_drive(config, args.output, args.split, args.bag, args.compressed, args.storage)
    elapsed = time.perf_counter() - start
    where = " and ".join(str(path) for path in (args.output, args.bag) if path is not None)
    print(f"rendered {count} frames of seed {args.seed} at {args.size[0]}x{args.size[1]} in {elapsed:.1f} s "
          f"({count / elapsed:.1f} frames/s) into {where}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from .train import load_config, train

    overrides = {
        name: getattr(args, name)
        for name in (
            "data", "output", "model", "labels", "train_split", "val_split", "val_data", "image_topic", "label_topic",
            "label_format", "steps", "batch_size", "lr", "weight_decay", "poly_power", "crop", "scale", "flip",
            "init_checkpoint", "imagenet", "val_every", "bn_batches", "checkpoint_every", "log_every", "workers", "amp", "device",
            "seed", "resume",
        )
    }
    result = train(load_config(args.config, overrides))
    print(f"trained to step {result['step']}; best validation mIoU {result['best_miou']:.4f}; see {result['output']}/")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from .bags import BagWriter, MatchStats, count_messages
    from .eval.evaluate import Shard, bag_samples, cityscapes_samples, evaluate
    from .eval.report import build_report, merge_reports, read_report, timing, write_report

    labels = get_label_set(args.labels)
    if args.merge:
        report = merge_reports([read_report(Path(path)) for path in args.merge], labels)
        write_report(report, labels, args.output)
        print(f"merged {len(args.merge)} reports: mIoU {_percent(report['miou'])} over {report['frames_evaluated']} frames; "
              f"see {args.output}/report.md")
        return 0
    if (args.bag is None) == (args.cityscapes is None):
        raise DenseASPPError("give exactly one source: --bag PATH (with --image-topic and --label-topic) or --cityscapes ROOT")
    if labels.num_classes != args.num_classes:
        raise DenseASPPError(f"label set {labels.name!r} has {labels.num_classes} classes, --num-classes is {args.num_classes}")
    shard = Shard.parse(args.shard)
    for folder, option in ((args.output, "--output"), (args.save_predictions, "--save-predictions"),
                           (args.write_bag.parent if args.write_bag else None, "--write-bag")):
        if folder is not None:
            _check_writable(folder, option)
    result_bag = BagWriter(args.write_bag) if args.write_bag else None  # refuses an existing bag now, not after the work
    stats = MatchStats()
    total = None
    if args.bag is not None:
        if not args.image_topic or not args.label_topic:
            raise DenseASPPError("--bag needs --image-topic and --label-topic")
        samples = bag_samples(
            args.bag, args.image_topic, args.label_topic, labels, args.label_format, args.tolerance, stats,
            args.max_image_pixels,
        )
        total = count_messages(args.bag, args.image_topic)
    else:
        samples = cityscapes_samples(args.cityscapes, args.split, labels, args.max_image_pixels)
    if total is not None:
        total = len(range(shard.index, total, shard.count))  # for the progress bar's ETA
    segmenter = _build_segmenter(args, multiscale=args.multiscale, input_size=args.input_size)
    costmap = _camera_costmap(args.camera, labels) if args.camera else None
    with ExitStack() as stack:
        bag = stack.enter_context(result_bag) if result_bag is not None else None

        def keep(sample, prediction) -> None:
            if bag is not None:
                image = np.ascontiguousarray(sample.image[..., ::-1]) if sample.is_bgr else sample.image
                bag.write_image("/eval/image", sample.stamp_ns, "camera", image, "rgb8")
                bag.write_image("/eval/mask", sample.stamp_ns, "camera", prediction, "mono8")
                bag.write_image("/eval/mask_color", sample.stamp_ns, "camera", labels.colorize(prediction), "rgb8")
                bag.write_image("/eval/ground_truth", sample.stamp_ns, "camera", sample.truth, "mono8")
                if costmap is not None:
                    costmap.update("camera", prediction, sample.stamp_ns / 1e9)
                    bag.write_grid("/eval/costmap", sample.stamp_ns, costmap.grid, costmap.snapshot().costs)
                bag.sync()  # a kill loses no finished frame; and a saved prediction means its frame is in the bag
            if args.save_predictions is not None:
                name = Path(sample.name).name.replace("_leftImg8bit.png", "") if args.cityscapes else f"frame_{sample.name}"
                target = args.save_predictions / Path(sample.name).parent / f"{name}_pred_labelIds.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                write_png(target, labels.to_label_ids(prediction))

        result = evaluate(samples, segmenter, labels, shard, keep, total=total, stats=stats if args.bag else None)
    if result.frames == 0:
        raise DenseASPPError("no frame was evaluated: " + ("; ".join(result.problems) or "the source is empty"))
    report = build_report(
        result.matrix, labels,
        frames_evaluated=result.frames, frames_unmatched_images=result.unmatched_images,
        frames_unmatched_labels=result.unmatched_labels, frames_corrupt=result.corrupt, complete=result.complete,
        problems=result.problems, shard=f"{shard.index}/{shard.count}", source=str(args.bag or args.cityscapes),
        model=args.model, weights=str(args.weights or find_published_weights(args.model) or "random"),
        device=str(segmenter.device), precision=str(segmenter.dtype).removeprefix("torch."), **timing(result.seconds),
    )
    write_report(report, labels, args.output)
    print(f"mIoU {_percent(report['miou'])} over {result.frames} frames"
          f" ({result.unmatched_images + result.unmatched_labels} unmatched, {result.corrupt} unreadable)"
          f"{'' if result.complete else ', INCOMPLETE'}; report in {args.output}/report.md")
    return 0 if result.complete else 1


def run_bag_recover(args: argparse.Namespace) -> int:
    from .bags import open_bag, recover_bag

    bag = recover_bag(args.partial)
    reader = open_bag(bag)
    try:
        count = reader.message_count
    finally:
        reader.close()
    print(f"{bag} is readable: the {count} messages written before its writer stopped (it is not the whole run)")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from .ros.demo import DemoOptions, run_demo

    options = DemoOptions(
        output=args.output, frames=args.frames, seed=args.seed, size=args.size, model=args.model, weights=args.weights,
        rate=args.rate, bag=args.bag, image_topic=args.image_topic, label_topic=args.label_topic,
        cityscapes=args.cityscapes, split=args.split,
    )
    if args.bag is not None and args.cityscapes is not None:
        raise DenseASPPError("give --bag or --cityscapes, not both")
    run_demo(options)
    return 0


def run_replay(args: argparse.Namespace) -> int:
    import os

    # Discovery stays on this machine unless the user says otherwise; the domain is the user's
    # (export the node's ROS_DOMAIN_ID), since replay talks to a node it did not start.
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    from .ros.replay import Replayer, ReplayOptions

    options = ReplayOptions(
        bag=args.bag, image_topic=args.image_topic, node=args.node, camera=args.camera, target_topic=args.target_topic,
        camera_info_topic=args.camera_info_topic, target_info_topic=args.target_info_topic, label_topic=args.label_topic,
        rate=args.rate, hz=args.hz, clock=args.clock, max_frames=args.max_frames, wait=args.wait,
    )
    replayer = Replayer(get_label_set(args.labels))
    try:
        if args.find_peak:
            rows = _find_peak(replayer, options)
            peak = max((r for r in rows if r["dropped_fraction"] < 0.05), key=lambda r: r["input_rate_hz"], default=None)
            summary = {"trials": rows, "peak_hz": peak["input_rate_hz"] if peak else None}
            print(f"peak input rate with < 5% dropped: {summary['peak_hz'] or 'none of the rates tried'}")
        else:
            summary = replayer.replay(options).summary()
            print("  ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items()))
    finally:
        replayer.close()
    if args.json:
        text = json.dumps(summary, indent=2) + "\n"
        atomic_write(args.json, lambda temporary: Path(temporary).write_text(text))
    return 0


def _find_peak(replayer, options) -> list[dict]:
    """The method of ros2_benchmark: raise a fixed input rate until 5% of frames are dropped, then bisect."""
    from dataclasses import replace

    rows: list[dict] = []

    def trial(hz: float) -> bool:
        summary = replayer.replay(replace(options, hz=hz, max_frames=options.max_frames or 40)).summary()
        rows.append(summary)
        print(f"{hz:7.2f} Hz in: {summary['output_rate_hz']:.2f} Hz out, {100 * summary['dropped_fraction']:.1f}% dropped")
        return summary["dropped_fraction"] < 0.05

    low, high = 0.0, 1.0
    while trial(high) and high < 1000:
        low, high = high, high * 2
    for _ in range(4):
        middle = (low + high) / 2
        if trial(middle):
            low = middle
        else:
            high = middle
    return rows


def _camera_costmap(path: Path, labels: LabelSet):
    """A one-camera SemanticCostmap from a camera description (``denseaspp synth``'s camera.yaml)."""
    import yaml

    from .costmap import CameraModel, CameraPose, CostmapSettings, SemanticCostmap, load_cost_table

    try:
        camera = yaml.safe_load(path.read_text())["camera"]
        model = CameraModel.from_intrinsics(camera["intrinsics"], camera["image_width"], camera["image_height"])
        pose = CameraPose.from_list(camera["pose"], f"{path}: camera.pose")
    except (OSError, KeyError, TypeError, yaml.YAMLError) as error:
        raise DenseASPPError(f"{path} is not a camera description (camera: intrinsics, image_width, image_height, pose): {error}") from None
    costmap = SemanticCostmap(load_cost_table(None, labels), CostmapSettings())
    costmap.set_camera("camera", model, pose)
    return costmap


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="denseaspp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    infer = commands.add_parser("infer", help="segment image files and folders into PNG masks")
    infer.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    infer.add_argument("--output", type=Path, required=True, help="folder for the results, one subfolder per kind")
    _add_engine_options(infer)
    infer.add_argument("--multiscale", action="store_true", help="the release's multi-scale + flip inference")
    infer.add_argument("--input-size", type=_size, help="resize the network input to HxW (masks keep the image size)")
    infer.add_argument("--labels", default="cityscapes", help="cityscapes or a label set YAML file")
    infer.add_argument("--save", type=_save_kinds, default=("labelid", "color"), help=f"comma list of {', '.join(SAVE_KINDS)}")
    infer.set_defaults(run=run_infer)

    convert = commands.add_parser("convert", help="convert an original checkpoint to .safetensors")
    convert.add_argument("source", type=Path, help="checkpoint to read (e.g. weights/denseASPP161.pkl)")
    convert.add_argument("target", type=Path, help="the .safetensors file to write")
    convert.add_argument("--model", default=DEFAULT_MODEL, choices=MODEL_NAMES)
    convert.add_argument("--num-classes", type=int, default=19)
    convert.add_argument("--half", action="store_true", help="store float16 (half the size)")
    convert.set_defaults(run=run_convert)

    bench = commands.add_parser("bench", help="throughput and latency of the raw forward and the Segmenter path")
    _add_engine_options(bench)
    bench.add_argument("--size", type=_size, default=(256, 512), help="image size HxW")
    bench.add_argument("--warmup", type=_count(0), default=3, help="untimed batches first")
    bench.add_argument("--iterations", type=_count(1), default=10, help="timed batches")
    bench.add_argument("--json", type=Path, help="also write the figures as JSON")
    bench.set_defaults(run=run_bench)

    synth = commands.add_parser("synth", help="render a synthetic street drive: Cityscapes-layout folder and/or bag")
    synth.add_argument("--output", type=Path, help="Cityscapes-layout folder (leftImg8bit/, gtFine/, bev/, camera.yaml)")
    synth.add_argument("--bag", type=Path, help="also (or only) write a ROS 2 bag into this new folder")
    synth.add_argument("--frames", type=_count(1), default=50)
    synth.add_argument("--seed", type=_count(0), default=0, help="the scene: same seed, same frames")
    synth.add_argument("--size", type=_size, default=(256, 512), help="image size HxW")
    synth.add_argument("--split", default="train", help="Cityscapes split folder name (train, val, ...)")
    synth.add_argument("--fps", type=float, default=10.0, help="frames per second of the drive")
    synth.add_argument("--speed", type=float, default=8.0, help="ego speed in m/s")
    synth.add_argument("--compressed", action="store_true", help="JPEG CompressedImage in the bag instead of rgb8 Image")
    synth.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="bag storage format")
    synth.set_defaults(run=run_synth)

    train = commands.add_parser(
        "train", help="train or fine-tune (the original recipe; under torchrun: DistributedDataParallel)",
        description="Options left out take the --config file's value, else the recipe's default (see README).",
    )
    train.add_argument("--config", type=Path, help="YAML file of training options (flags override it)")
    train.add_argument("--data", help="Cityscapes-layout folder (real or synthetic) or a ROS 2 bag")
    train.add_argument("--output", help="run folder: last.pt (resumable), best.pt, *.safetensors, log.csv/json, training.png")
    train.add_argument("--model", choices=MODEL_NAMES)
    train.add_argument("--labels", help="cityscapes or a label set YAML file")
    train.add_argument("--train-split", help="training split folder (default train)")
    train.add_argument("--val-split", help="validation split folder (default val)")
    train.add_argument("--val-data", help="validate on this folder or bag instead")
    train.add_argument("--image-topic", help="bag image topic (Image or CompressedImage)")
    train.add_argument("--label-topic", help="bag label topic (mono8, matched by stamp)")
    train.add_argument("--label-format", choices=("trainid", "labelid"))
    train.add_argument("--steps", type=_count(1))
    train.add_argument("--batch-size", type=_count(1), help="per process")
    train.add_argument("--lr", type=float)
    train.add_argument("--weight-decay", type=float)
    train.add_argument("--poly-power", type=float)
    train.add_argument("--crop", type=_size, help="HxW of the training crops (default 512x512)")
    train.add_argument("--scale", type=float, nargs=2, metavar=("LOW", "HIGH"), help="random scale range (default 0.5 2.0)")
    train.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None)
    train.add_argument("--init-checkpoint", help="fine-tune from a DenseASPP checkpoint (.pkl/.pt/.safetensors)")
    train.add_argument("--imagenet", help="start the backbone from torchvision ImageNet weights (.pth)")
    train.add_argument("--val-every", type=_count(0), help="steps between validations (0: none)")
    train.add_argument("--bn-batches", type=_count(0), help="batches re-estimating BatchNorm statistics (default 20; 0 off)")
    train.add_argument("--checkpoint-every", type=_count(1))
    train.add_argument("--log-every", type=_count(1))
    train.add_argument("--workers", type=_count(0), help="data loader processes")
    train.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="mixed precision on CUDA")
    train.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    train.add_argument("--seed", type=_count(0))
    train.add_argument("--resume", action=argparse.BooleanOptionalAction, default=None,
                       help="continue OUTPUT/last.pt when it exists (default)")
    train.set_defaults(run=run_train)

    evaluation = commands.add_parser(
        "eval", help="mIoU of a model on a bag or a Cityscapes folder (official convention), or --merge shards"
    )
    evaluation.add_argument("--bag", type=Path, help="ROS 2 bag (folder or .mcap) or ROS 1 .bag")
    evaluation.add_argument("--image-topic", help="Image or CompressedImage topic")
    evaluation.add_argument("--label-topic", help="mono8 label topic, matched to images by header stamp")
    evaluation.add_argument("--label-format", choices=("trainid", "labelid"), default="trainid")
    evaluation.add_argument("--tolerance", type=float, default=0.001, help="stamp matching tolerance in seconds")
    evaluation.add_argument("--cityscapes", type=Path, help="Cityscapes-layout root (leftImg8bit/, gtFine/)")
    evaluation.add_argument("--split", default="val")
    evaluation.add_argument("--output", type=Path, required=True, help="report.json, report.md, confusion.png, per_class_iou.png")
    evaluation.add_argument("--save-predictions", type=Path, help="labelId PNGs for cityscapesscripts")
    evaluation.add_argument("--write-bag", type=Path, help="bag of the images, predicted masks and colour masks")
    evaluation.add_argument("--camera", type=Path, help="camera.yaml (as denseaspp synth writes it): costmaps in --write-bag too")
    evaluation.add_argument("--shard", default="0/1", help="i/N: evaluate every N-th frame from the i-th")
    evaluation.add_argument("--merge", nargs="+", metavar="REPORT", help="merge the report.json of shards into --output")
    evaluation.add_argument("--labels", default="cityscapes", help="cityscapes or a label set YAML file")
    evaluation.add_argument("--multiscale", action="store_true")
    evaluation.add_argument("--input-size", type=_size)
    _add_engine_options(evaluation)
    evaluation.set_defaults(run=run_eval)

    demo = commands.add_parser("demo", help="synthetic drive -> segmentation_node (demo weights, costmap) -> scores and pictures")
    demo.add_argument("--output", type=Path, default=Path("out/demo"))
    demo.add_argument("--frames", type=_count(1), default=60)
    demo.add_argument("--seed", type=_count(0), default=7, help="scene of the drive (the demo weights never saw seed 7)")
    demo.add_argument("--size", type=_size, default=(256, 512))
    demo.add_argument("--model", default="MobileNetDenseASPP", choices=MODEL_NAMES)
    demo.add_argument("--weights", default="demo", help="checkpoint for the node; demo = the synthetic-world weights")
    demo.add_argument("--rate", type=float, default=1.0, help="replay speed factor")
    demo.add_argument("--bag", type=Path, help="replay this bag instead of a synthetic drive")
    demo.add_argument("--cityscapes", type=Path, help="replay this Cityscapes-layout folder (as a 10 Hz drive) instead")
    demo.add_argument("--split", default="val", help="the --cityscapes split")
    demo.add_argument("--image-topic", default="/front/image_raw")
    demo.add_argument("--label-topic", default="/front/labels", help="mono8 trainIds matched by stamp (for mIoU)")
    demo.set_defaults(run=run_demo)

    replay = commands.add_parser("replay", help="replay a bag into a running segmentation node and measure it")
    replay.add_argument("bag", type=Path)
    replay.add_argument("--image-topic", required=True, help="the bag's Image or CompressedImage topic")
    replay.add_argument("--label-topic", help="mono8 trainIds in the bag: score the published masks")
    replay.add_argument("--camera-info-topic", help="the bag's CameraInfo topic, republished to --target-info-topic")
    replay.add_argument("--node", default="segmentation_node", help="name of the running node")
    replay.add_argument("--camera", default="front", help="the node's camera the frames are for")
    replay.add_argument("--target-topic", default="/front/image_raw", help="the node's image topic")
    replay.add_argument("--target-info-topic", default="/front/camera_info")
    replay.add_argument("--rate", type=float, default=1.0, help="factor on the recorded timing")
    replay.add_argument("--hz", type=float, help="fixed input rate instead of the recorded timing")
    replay.add_argument("--clock", action="store_true", help="keep the recorded stamps and publish /clock (use_sim_time)")
    replay.add_argument("--max-frames", type=_count(1))
    replay.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the node to subscribe")
    replay.add_argument("--find-peak", action="store_true", help="search the highest rate with < 5%% dropped frames")
    replay.add_argument("--labels", default="cityscapes")
    replay.add_argument("--json", type=Path)
    replay.set_defaults(run=run_replay)

    recover = commands.add_parser("bag-recover", help="make what an interrupted bag writer left in PATH.partial readable")
    recover.add_argument("partial", type=Path, help="the PATH.partial folder (or PATH)")
    recover.set_defaults(run=run_bag_recover)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except DenseASPPError as error:
        print(f"denseaspp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the file system refused (disk full, permissions, a file where a folder goes)
        print(f"denseaspp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug, not bad input: still one line, the traceback on request
        if os.environ.get("DENSEASPP_TRACEBACK"):
            raise
        print(
            f"denseaspp {args.command}: internal error: {type(error).__name__}: {error} "
            "(set DENSEASPP_TRACEBACK=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
