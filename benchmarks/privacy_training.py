"""Training the privacy audit's copy detector (stage train_privacy) in the default memory layout against
channels-last, with the demo profile's network, batch and precision on random films; both runs start
from the same seed, so the table also shows how far the two layouts' losses drift apart.

    python benchmarks/privacy_training.py [--epochs 3] [--films 448]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cxrldm.evaluation import privacy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=str(ROOT / "params.yaml"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--films", type=int, default=448, help="training films (the demo has 464)")
    args = parser.parse_args()
    p = yaml.safe_load(Path(args.profile).read_text())["privacy"]
    films = torch.rand(args.films, 1, p["image_size"], p["image_size"], generator=torch.Generator().manual_seed(0))
    probe = films[:64]
    rows = []
    for channels_last in (False, True):
        start = time.perf_counter()
        model = privacy.train_embedding(
            films,
            torch.arange(len(films)),
            args.epochs,
            p["batch_size"],
            p["lr"],
            seed=0,
            width=p["width"],
            embed_dim=p["embed_dim"],
            temperature=p["temperature"],
            precision=p["precision"],
            channels_last=channels_last,
        )
        seconds = time.perf_counter() - start
        rows.append((channels_last, seconds, privacy.embed(model, probe, p["image_size"])))
    steps = args.epochs * (args.films // p["batch_size"])
    print(
        f"EmbeddingCNN width {p['width']}, {p['image_size']} px, batch {p['batch_size']} anchors + partners, "
        f"precision {p['precision']}, {torch.get_num_threads()} threads, {steps} steps\n"
    )
    print("| layout | s/step | s/epoch |")
    print("|---|---:|---:|")
    for channels_last, seconds, _ in rows:
        name = "channels-last (train_privacy)" if channels_last else "default (contiguous)"
        print(f"| {name} | {seconds / steps:.4f} | {seconds / args.epochs:.2f} |")
    drift = (rows[0][2] - rows[1][2]).norm(dim=1).mean()
    print(
        f"\nspeed-up: {rows[0][1] / rows[1][1]:.2f}x; mean distance between the two layouts' unit embeddings "
        f"of {len(probe)} films: {drift:.3f}"
    )


if __name__ == "__main__":
    main()
