#!/usr/bin/python3
"""Training and validation loss of an xcomp run, from its metrics.jsonl, as a PNG.

    /usr/bin/python3 tools/plot_metrics.py runs/quickstart/stories260k-regen-kv/metrics.jsonl -o loss.png
    /usr/bin/python3 tools/plot_metrics.py runs/a/metrics.jsonl runs/b/metrics.jsonl -o compare.png --text

Several files draw one pair of curves each, labelled by their directory. --text plots the
loss over text tokens only (text_loss / val_text_loss), which is what compression
quality shows in: on stories260K the end-of-text target alone costs ~28 nats
(DESIGN.md). The no-prefix validation baseline (val_noprefix_*) is a dashed line.
Needs Debian's python3-matplotlib.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def read_records(path):
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{number}: not a JSON line ({e})")
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metrics", nargs="+", help="metrics.jsonl files")
    parser.add_argument("-o", "--out", required=True, help="PNG to write")
    parser.add_argument("--text", action="store_true", help="loss over text tokens only")
    args = parser.parse_args()

    train_key, val_key, base_key = ("text_loss", "val_text_loss", "val_noprefix_text_loss") if args.text else (
        "loss", "val_loss", "val_noprefix_loss")
    fig, ax = plt.subplots(figsize=(8, 5))
    for path in args.metrics:
        records = read_records(path)
        label = os.path.basename(os.path.dirname(os.path.abspath(path)))
        train = [(r["step"], r[train_key]) for r in records if train_key in r]
        val = [(r["step"], r[val_key]) for r in records if val_key in r]
        if not train and not val:
            sys.exit(f"{path}: no '{train_key}' or '{val_key}' in any record")
        line = None
        if train:
            (line,) = ax.plot(*zip(*train), linewidth=1, alpha=0.7, label=f"{label} train")
        if val:
            ax.plot(*zip(*val), marker="o", linewidth=2, color=line.get_color() if line else None, label=f"{label} validation")
        base = [r[base_key] for r in records if base_key in r]
        if base:
            ax.axhline(base[0], linestyle="--", linewidth=1, color=line.get_color() if line else "gray",
                       label=f"{label} no prefix")
    ax.set_xlabel("step")
    ax.set_ylabel("loss over text tokens (nats)" if args.text else "loss (nats per target)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(args.out)


if __name__ == "__main__":
    main()
