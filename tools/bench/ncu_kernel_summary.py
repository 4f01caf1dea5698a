#!/usr/bin/env python3
"""Sums an Nsight Compute CSV by kernel: launches, GPU time, DRAM bytes read and written.

Where a CUDA op's time goes, kernel by kernel (cuBLAS's products, our own kernels),
from one profiled run on the GPU machine (ncu is in its /usr/local/cuda/bin):

  ncu --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum \
      --csv --page raw --print-units base --log-file /tmp/attention.csv \
      xcomp bench attention --device cuda --shape llama3-8b --kernels gemm_causal \
      --repeats 1 --warmup 0
  python3 tools/bench/ncu_kernel_summary.py /tmp/attention.csv

ncu runs each kernel alone at locked clocks, so the times are longer than in a normal
run; the shares and the bytes are what to read.
"""
import collections
import csv
import sys

COLUMNS = ("gpu__time_duration.sum", "dram__bytes_read.sum", "dram__bytes_write.sum")


def main(path):
    rows = list(csv.reader(open(path, newline="")))
    try:
        start = next(i for i, row in enumerate(rows) if "Kernel Name" in row)
    except StopIteration:
        sys.exit(f"{path}: no 'Kernel Name' header: not an ncu --csv --page raw log")
    header = rows[start]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        sys.exit(f"{path}: no column {', '.join(missing)}: profile with --metrics {','.join(COLUMNS)}")
    name_at = header.index("Kernel Name")
    at = [header.index(c) for c in COLUMNS]
    units = rows[start + 1]
    print(f"time in {units[at[0]]}, DRAM in {units[at[1]]}s")
    totals = collections.OrderedDict()
    for row in rows[start + 2:]:
        if len(row) <= max(at + [name_at]):
            continue
        entry = totals.setdefault(row[name_at][:100], [0, 0.0, 0.0, 0.0])
        entry[0] += 1
        for i, column in enumerate(at):
            entry[i + 1] += float(row[column].replace(",", "") or 0)
    all_time = sum(entry[1] for entry in totals.values()) or 1.0
    print(f"{'launches':>8} {'time':>12} {'share':>6} {'read':>10} {'written':>10}  kernel")
    for name, (launches, time, read, written) in sorted(totals.items(), key=lambda kv: -kv[1][1]):
        print(f"{launches:8d} {time:12.0f} {100 * time / all_time:5.1f}% {read:10.4g} {written:10.4g}  {name}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
