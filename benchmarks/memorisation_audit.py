"""The memorisation audit's nearest-training-neighbour search on random features: the chunked exact
search (cxrldm.evaluation.memorisation) against the simpler ways of doing it, measured in the same run,
and the time projected from the measured throughput to MIMIC's size.

    python benchmarks/memorisation_audit.py [--sizes 10000x2000,20000x4000,40000x8000] [--dim 768]
    python benchmarks/memorisation_audit.py --quick       # tiny sizes, a few seconds
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cxrldm.evaluation.memorisation import audit, nearest_neighbours

# MIMIC-CXR: about 96,000 training images matched by 20,000 samples, and the test split (about 5,000
# images of new patients) as the null; spaces: 1024-d RAD-DINO/xrv-like features, 32x32 and 16x16 pixels.
MIMIC_TRAIN, MIMIC_SAMPLES, MIMIC_TEST = 96_000, 20_000, 5_000
MIMIC_SPACES = (("features (RAD-DINO / xrv)", 1024), ("pixels 32x32", 32 * 32), ("pixels 16x16", 16 * 16))


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def full_matrix(queries, references):
    """The whole (Q, R) distance matrix at once, then its row minimum."""
    distances, indices = torch.cdist(queries, references).min(dim=1)
    return distances, indices


def per_query_loop(queries, references):
    """A Python loop over the queries, each compared with every reference by numpy broadcasting."""
    q, r = queries.numpy(), references.numpy()
    indices = np.array([((r - row) ** 2).sum(axis=1).argmin() for row in q])
    return None, torch.from_numpy(indices)


def pairwise_loop(queries, references):
    """Two nested Python loops, one distance at a time."""
    q, r = queries.numpy(), references.numpy()
    indices = []
    for row in q:
        best, best_j = float("inf"), -1
        for j, ref in enumerate(r):
            d = float(np.sqrt(((row - ref) ** 2).sum()))
            if d < best:
                best, best_j = d, j
        indices.append(best_j)
    return None, torch.tensor(indices)


def kd_tree(queries, references):
    from scipy.spatial import cKDTree

    distances, indices = cKDTree(references.numpy()).query(queries.numpy(), k=1)
    return torch.from_numpy(distances), torch.from_numpy(indices)


def features(n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """Random post-ReLU-like features: non-negative, correlated through a shared offset."""
    return torch.relu(torch.randn(n, dim, generator=generator) + 0.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="10000x2000,20000x4000,40000x8000",
        help="comma-separated REFERENCESxQUERIES for the chunked search",
    )
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--chunk", type=int, default=4096)
    parser.add_argument("--full-size", default="10000x2000", help="size for the full-matrix comparison")
    parser.add_argument("--small-size", default="2000x200", help="size for cKDTree and the per-query loop")
    parser.add_argument("--tiny-size", default="1000x50", help="size for the pairwise Python loop")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test (a few seconds)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.dim, args.chunk = "2000x400,4000x400", 256, 1024
        args.full_size, args.small_size, args.tiny_size = "2000x400", "500x50", "200x10"
    parse = lambda s: tuple(int(v) for v in s.split("x"))
    sizes = [parse(s) for s in args.sizes.split(",")]
    generator = torch.Generator().manual_seed(0)
    all_sizes = [*sizes, parse(args.full_size), parse(args.small_size), parse(args.tiny_size)]
    references = features(max(r for r, _ in all_sizes), args.dim, generator)
    queries = features(max(q for _, q in all_sizes), args.dim, generator)
    nearest_neighbours(queries[:64], references[:512], chunk=args.chunk)  # warm up the BLAS threads

    rows = []  # (method, R, Q, seconds, agrees)

    def run(name, fn, size, reference_indices=None):
        r, q = size
        seconds, (_, indices) = timed(fn, queries[:q], references[:r])
        agrees = (
            "-" if reference_indices is None else ("yes" if torch.equal(indices.long(), reference_indices) else "NO")
        )
        rows.append((name, r, q, seconds, agrees))
        return indices.long()

    ours = lambda q, r: nearest_neighbours(q, r, chunk=args.chunk)
    for size in sizes:
        run("chunked exact search (ours)", ours, size)
    full = parse(args.full_size)
    ours_full = run("chunked exact search (ours)", ours, full) if full not in sizes else None
    if ours_full is None:
        ours_full = nearest_neighbours(queries[: full[1]], references[: full[0]], chunk=args.chunk)[1]
    run("full distance matrix at once (torch.cdist)", full_matrix, full, ours_full)
    small = parse(args.small_size)
    ours_small = run("chunked exact search (ours)", ours, small)
    run("scipy cKDTree (exact)", kd_tree, small, ours_small)
    run("per-query Python loop (numpy)", per_query_loop, small, ours_small)
    tiny = parse(args.tiny_size)
    ours_tiny = run("chunked exact search (ours)", ours, tiny)
    run("pairwise Python loop", pairwise_loop, tiny, ours_tiny)

    r, q = max(sizes)
    synthetic_d, _ = nearest_neighbours(queries[: q // 2], references[:r], chunk=args.chunk)
    null_d, _ = nearest_neighbours(queries[q // 2 : q], references[:r], chunk=args.chunk)
    audit_seconds, _ = timed(audit, synthetic_d, null_d, 1.0)

    print(
        f"random {args.dim}-d features, chunk {args.chunk} (block {args.chunk**2 * 4 / 2**20:.0f} MiB), "
        f"{torch.get_num_threads()} torch threads\n"
    )
    print("| method | references | queries | seconds | distances/s | same neighbours as ours |")
    print("|---|---:|---:|---:|---:|:---:|")
    for name, r, q, seconds, agrees in rows:
        print(f"| {name} | {r:,} | {q:,} | {seconds:.3f} | {r * q / seconds:.3g} | {agrees} |")
    print(
        f"\naudit() on {len(synthetic_d):,} synthetic and {len(null_d):,} null distances: {audit_seconds * 1e3:.1f} ms"
    )

    # projection: time = pairs x dim / (measured pairs x dim per second) of each method at its largest size
    throughput = {}
    for name, r, q, seconds, _ in rows:
        if r * q >= throughput.get(name, (0, 0))[0]:
            throughput[name] = (r * q, r * q * args.dim / seconds)
    pairs = (MIMIC_SAMPLES + MIMIC_TEST) * MIMIC_TRAIN
    print(
        f"\nPROJECTION (not measured) to MIMIC: {MIMIC_SAMPLES:,} samples + {MIMIC_TEST:,} test images (null) "
        f"against {MIMIC_TRAIN:,} training images = {pairs:.3g} distances per space, from each method's "
        "throughput (distances x dims per second) at its largest measured size, on this machine:\n"
    )
    names = list(throughput)
    print("| space | dim | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for space, dim in MIMIC_SPACES:
        cells = [hours(pairs * dim / throughput[n][1]) for n in names]
        print(f"| {space} | {dim} | " + " | ".join(cells) + " |")
    matrix_gib = MIMIC_SAMPLES * MIMIC_TRAIN * 4 / 2**30
    print(
        f"\nThe full-matrix approach also needs the {MIMIC_SAMPLES:,} x {MIMIC_TRAIN:,} float32 matrix at once: "
        f"{matrix_gib:.1f} GiB; the chunked search holds one {args.chunk} x {args.chunk} block "
        f"({args.chunk**2 * 4 / 2**20:.0f} MiB). Every method is projected linearly in distances x dims; "
        "a KD-tree in hundreds of dimensions visits nearly every point, so it scales like brute force."
    )


def hours(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


if __name__ == "__main__":
    main()
