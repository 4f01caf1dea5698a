#!/usr/bin/python3
"""Regeneration quality against compression ratio, from `xcomp eval --task regeneration`
reports (report.json), as a PNG: the paper's compression-ratio curve.

    /usr/bin/python3 tools/plot_ratio.py runs/eval/*/report.json -o ratio.png [--metric rouge_l]

Each report contributes one point per text length (ratio = text length / N) for the
compressed system; points of the same mode (kv / embedding, and the decoder positions
when not the reference ones) are joined in ratio order.
The full-context and no-context baselines, where present, are drawn as horizontal
lines (their mean over the reports of each text length). Needs Debian's
python3-matplotlib.
"""
import argparse
import collections
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

METRICS = ["rouge1", "rouge2", "rouge_l", "bleu4", "exact_match"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", nargs="+", help="report.json files of regeneration evaluations")
    parser.add_argument("-o", "--out", required=True, help="PNG to write")
    parser.add_argument("--metric", default="rouge_l", choices=METRICS)
    args = parser.parse_args()

    curves = collections.defaultdict(list)  # (mode, text_len) -> [(ratio, value)]
    baselines = collections.defaultdict(list)  # system -> values
    for path in args.reports:
        with open(path) as f:
            try:
                report = json.load(f)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}: not JSON ({e})")
        if report.get("task") != "regeneration":
            sys.exit(f"{path}: not a regeneration report (task is {report.get('task')!r})")
        for group in report["results"]:
            systems = group["systems"]
            if "compressed" in systems:
                mode = report["mode"]
                if report.get("decoder_positions", "reference") != "reference":
                    mode += ", " + report["decoder_positions"]
                key = (mode, group["text_len"])
                curves[key].append((group["compression_ratio"], systems["compressed"][args.metric]))
            for name in ("full_context", "no_context"):
                if name in systems:
                    baselines[name].append(systems[name][args.metric])
    if not curves:
        sys.exit("no compressed results in the reports")

    fig, ax = plt.subplots(figsize=(8, 5))
    for (mode, text_len), points in sorted(curves.items()):
        points.sort()
        ax.plot(*zip(*points), marker="o", label=f"{mode}, {text_len}-token texts")
    styles = {"full_context": ":", "no_context": "--"}
    for name, values in baselines.items():
        ax.axhline(sum(values) / len(values), linestyle=styles[name], color="gray", label=name.replace("_", " "))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("compression ratio (text tokens / N)")
    ax.set_ylabel(args.metric)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(args.out)


if __name__ == "__main__":
    main()
