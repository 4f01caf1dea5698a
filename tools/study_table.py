#!/usr/bin/env python3
"""The README "Results" tables from a study directory written by tools/study.sh.

    python3 tools/study_table.py runs/study/stories260k > runs/study/stories260k/results.md

Reads each row's metrics.jsonl (the last validation losses and teacher-forced accuracies
-- for QA over the answer tokens, the end-of-text target apart -- and the no-prefix
baseline the trainer measures at step 0) and eval/report.json (xcomp eval: the compressed system and
the full-context and no-context baselines on the same items; a row whose
eval/baselines_from names another row takes the baselines from that row's report). Rows that have not run yet
are left out; a row whose training finished but whose evaluation has not run shows '-'.
Standard library only: CI and fresh machines have no third-party Python packages.
"""
import json
import os
import re
import sys

# regen-kv[-after]-nN-lL or regen-embedding[-xS]-nN-lL (tools/study.sh)
REGEN_ROW = re.compile(r"regen-(kv|embedding)(-after)?(?:-x([0-9]*\.?[0-9]+))?-n(\d+)-l(\d+)$")


def last_with(rows, key):
    for r in reversed(rows):
        if key in r:
            return r
    return None


def metrics(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def report(run_dir):
    path = os.path.join(run_dir, "eval", "report.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def systems(rep):
    """The first result group's systems ({} without a report)."""
    if not rep or not rep.get("results"):
        return {}
    return rep["results"][0]["systems"]


def baselines_from(run_dir):
    """The row whose report holds this row's baselines (tools/study.sh decodes the base
    model's full-text and no-prefix systems once per text length and once per QA set), or None."""
    path = os.path.join(run_dir, "eval", "baselines_from")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read().strip() or None


def row_systems(study, run):
    """The run's evaluated systems, with the baselines from the row baselines_from names."""
    sy = systems(report(run))
    source = baselines_from(run)
    if source:
        sy = {**systems(report(os.path.join(study, source))), "compressed": sy.get("compressed", {})}
    return sy


def fmt(v, digits=3):
    return "-" if v is None else f"{v:.{digits}f}"


def regen_table(study, names):
    out = ["| row | mode | positions | N | text tokens | ratio | val loss | val text loss | val text acc | "
           "R-L | BLEU-4 | EM | full-text R-L | no-prefix R-L | no-prefix val text loss | no-prefix val text acc |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        m = REGEN_ROW.match(name)
        run = os.path.join(study, name)
        rows = metrics(run)
        if not m or rows is None:
            continue
        mode, after, n, length = m.group(1), bool(m.group(2)), int(m.group(4)), int(m.group(5))
        label = f"{mode} x{m.group(3)}" if m.group(3) else mode
        val = last_with(rows, "val_loss") or {}
        base = last_with(rows, "val_noprefix_loss") or {}
        sy = row_systems(study, run)
        comp, full, none = sy.get("compressed", {}), sy.get("full_context", {}), sy.get("no_context", {})
        positions = "-" if mode == "embedding" else ("after_prefix" if after else "reference")
        out.append(f"| `{name}` | {label} | {positions} | {n} | {length} | {length / n:g} | {fmt(val.get('val_loss'))} | "
                   f"{fmt(val.get('val_text_loss'))} | {fmt(val.get('val_text_accuracy'))} | "
                   f"{fmt(comp.get('rouge_l'))} | {fmt(comp.get('bleu4'))} | {fmt(comp.get('exact_match'))} | "
                   f"{fmt(full.get('rouge_l'))} | {fmt(none.get('rouge_l'))} | "
                   f"{fmt(base.get('val_noprefix_text_loss'))} | {fmt(base.get('val_noprefix_text_accuracy'))} |")
    return out


def qa_table(study, names):
    out = ["| row | QA set | mode | N | val answer loss | val answer acc | retention acc (vs none) | EM | F1 | "
           "untrained, no context: val answer loss / acc | "
           "untrained, full context: EM / F1 | no context: EM / F1 |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    upper = {}  # QA set -> the mode-none row (fine-tuned with the full context): the upper bound
    for name in names:
        m = re.match(r"qa-([a-z0-9]+)-none$", name)
        if m:
            run = os.path.join(study, name)
            upper[m.group(1)] = last_with(metrics(run) or [], "val_loss") or {}
    for name in names:
        m = re.match(r"qa-([a-z0-9]+)-(kv|embedding|none)(?:-n(\d+))?$", name)
        run = os.path.join(study, name)
        rows = metrics(run)
        if not m or rows is None:
            continue
        qa_set, mode, n = m.group(1), m.group(2), m.group(3) or "-"
        val = last_with(rows, "val_loss") or {}
        base = last_with(rows, "val_noprefix_loss") or {}
        sy = row_systems(study, run)
        comp, full, none = sy.get("compressed", {}), sy.get("full_context", {}), sy.get("no_context", {})
        upper_val = upper.get(qa_set, {})

        def ratio(mine, best):
            if mode == "none" or not best or mine is None:
                return "-"
            return f"{mine / best:.2f}"

        label = "none (full context, fine-tuned)" if mode == "none" else mode
        out.append(f"| `{name}` | {qa_set} | {label} | {n} | {fmt(val.get('val_text_loss'))} | "
                   f"{fmt(val.get('val_text_accuracy'))} | "
                   f"{ratio(val.get('val_text_accuracy'), upper_val.get('val_text_accuracy'))} | "
                   f"{fmt(comp.get('em'))} | {fmt(comp.get('f1'))} | "
                   f"{fmt(base.get('val_noprefix_text_loss'))} / {fmt(base.get('val_noprefix_text_accuracy'))} | "
                   f"{fmt(full.get('em'))} / {fmt(full.get('f1'))} | {fmt(none.get('em'))} / {fmt(none.get('f1'))} |")
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: study_table.py STUDY_DIR")
    study = sys.argv[1]
    names = sorted(d for d in os.listdir(study) if os.path.isdir(os.path.join(study, d)))
    order = {"kv": 0, "kv-after": 1, "embedding": 2}

    def regen_key(name):
        m = REGEN_ROW.match(name)
        if not m:
            return (0, 0, 0, 0.0)
        return (int(m.group(5)), order[m.group(1) + (m.group(2) or "")], int(m.group(4)), float(m.group(3) or 0))

    regen = sorted((n for n in names if n.startswith("regen-")), key=regen_key)
    qa = [n for n in names if n.startswith("qa-")]
    print(f"## {os.path.basename(os.path.normpath(study))}: regeneration\n")
    print("\n".join(regen_table(study, regen)))
    if qa:
        print(f"\n## {os.path.basename(os.path.normpath(study))}: QA\n")
        print("\n".join(qa_table(study, qa)))


if __name__ == "__main__":
    main()
