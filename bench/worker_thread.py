"""Why the torch backend loses speed inside the node: the same ``segment`` call on the main thread
back to back, with idle gaps (frames arriving at a camera's pace), and on a worker thread (where
the node runs inference) both ways. Usage:

    .venv/bin/python bench/worker_thread.py --backend torch
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np

from denseaspp_ros.inference import BackendSettings, load_engine


def median_ms(segment, count: int, gap_s: float) -> float:
    times = []
    for _ in range(count):
        time.sleep(gap_s)
        start = time.perf_counter()
        segment()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--gap", type=float, default=0.4, help="idle seconds between frames")
    args = parser.parse_args()
    engine = load_engine("demo", backend=BackendSettings(backend=args.backend), input_size=(256, 512), log=lambda m: None)
    image = np.random.default_rng(0).integers(0, 256, (256, 512, 3), dtype=np.uint8)
    segment = lambda: engine.segment([image])  # noqa: E731
    median_ms(segment, 2, 0.0)
    results = {"main thread, back to back": median_ms(segment, 10, 0.0),
               f"main thread, {args.gap} s gaps": median_ms(segment, 6, args.gap)}

    def worker() -> None:
        results["worker thread, back to back"] = median_ms(segment, 10, 0.0)
        results[f"worker thread, {args.gap} s gaps"] = median_ms(segment, 6, args.gap)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    for name, milliseconds in results.items():
        print(f"{engine.describe()['backend']:12} {name:32} {milliseconds:7.1f} ms")


if __name__ == "__main__":
    main()
