"""Reference values for xcomp's optimizer pieces (trainer/adamw, trainer/schedule,
trainer/grad_clip), written to tests/reference/data/adamw_reference.json.

Run from the repository root:
    /tmp/refvenv/bin/python tests/reference/make_adamw_reference.py

Everything is float32 on the CPU, as in xcomp; numbers are written with Python's repr
of the float32 value, so the JSON holds them exactly. A rerun writes the same bytes.

JSON layout:
  "versions": {"torch": ..., "transformers": ...}
  "adamw": [ {
      "name": str, "beta1", "beta2", "eps", "weight_decay": float,
      "lrs": [lr of step 1, lr of step 2, ...],
      "params": {name: {"shape": [...], "initial": [flat values]}},
      "grads": [ {name: [flat values]} for each step ],     # the gradient fed at that step
      "after": [ {name: [flat values]} for each step ],     # parameters after that step
      "exp_avg": {name: [...]}, "exp_avg_sq": {name: [...]}, "step": int   # final state
  } ]
  "schedules": [ {
      "kind": "constant_with_warmup" | "cosine" | "linear", "warmup_steps": int,
      "total_steps": int, "min_lr_ratio": float, "base_lr": float,
      "lrs": [lr for scheduler step 0, 1, ..., total_steps + 1]   # float64
  } ]
      The lr at index s is what the optimizer uses for its (s+1)-th update: LambdaLR
      is read before the first scheduler.step(). cosine with min_lr_ratio > 0 uses
      transformers' get_cosine_with_min_lr_schedule_with_warmup(min_lr_rate=...);
      linear with min_lr_ratio > 0 has no transformers function and is left out.
  "clip": [ {
      "max_norm": float, "grads": [{"shape": [...], "values": [...]}],
      "norm": float (the total norm torch returns), "clipped": [[flat values] per grad]
  } ]
"""
import json
import math
import os

import torch
import transformers
from transformers.optimization import (
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_cosine_with_min_lr_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

OUT = os.path.join("tests", "reference", "data", "adamw_reference.json")


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def adamw_case(name, seed, beta1, beta2, eps, weight_decay, lrs, shapes):
    gen = torch.Generator().manual_seed(seed)
    params = {n: torch.randn(s, generator=gen, dtype=torch.float32) for n, s in shapes.items()}
    initial = {n: flat(p) for n, p in params.items()}
    tensors = [torch.nn.Parameter(p.clone()) for p in params.values()]
    names = list(params.keys())
    opt = torch.optim.AdamW(tensors, lr=lrs[0], betas=(beta1, beta2), eps=eps,
                            weight_decay=weight_decay, foreach=False)
    grads_per_step, after_per_step = [], []
    for lr in lrs:
        for group in opt.param_groups:
            group["lr"] = lr
        grads = {}
        for n, p in zip(names, tensors):
            # Gradients of mixed scale, one of them tiny, so eps and bias correction matter.
            g = torch.randn(p.shape, generator=gen, dtype=torch.float32) * 0.5
            if n == "tiny":
                g = g * 1e-6
            p.grad = g
            grads[n] = flat(g)
        opt.step()
        grads_per_step.append(grads)
        after_per_step.append({n: flat(p) for n, p in zip(names, tensors)})
    state = opt.state
    return {
        "name": name, "beta1": beta1, "beta2": beta2, "eps": eps, "weight_decay": weight_decay,
        "lrs": lrs,
        "params": {n: {"shape": list(s), "initial": initial[n]} for n, s in shapes.items()},
        "grads": grads_per_step,
        "after": after_per_step,
        "exp_avg": {n: flat(state[p]["exp_avg"]) for n, p in zip(names, tensors)},
        "exp_avg_sq": {n: flat(state[p]["exp_avg_sq"]) for n, p in zip(names, tensors)},
        "step": int(state[tensors[0]]["step"].item()),
    }


def schedule_lrs(kind, warmup, total, min_lr_ratio, base_lr):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    if kind == "constant_with_warmup":
        sched = get_constant_schedule_with_warmup(opt, warmup)
    elif kind == "cosine" and min_lr_ratio == 0.0:
        sched = get_cosine_schedule_with_warmup(opt, warmup, total)
    elif kind == "cosine":
        sched = get_cosine_with_min_lr_schedule_with_warmup(opt, warmup, total, min_lr_rate=min_lr_ratio)
    elif kind == "linear" and min_lr_ratio == 0.0:
        sched = get_linear_schedule_with_warmup(opt, warmup, total)
    else:
        raise ValueError(kind)
    lrs = []
    for _ in range(total + 2):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return {"kind": kind, "warmup_steps": warmup, "total_steps": total,
            "min_lr_ratio": min_lr_ratio, "base_lr": base_lr, "lrs": lrs}


def clip_case(seed, max_norm, shapes, scale):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float32) * scale
    before = [{"shape": list(p.shape), "values": flat(p.grad)} for p in params]
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return {"max_norm": max_norm, "grads": before, "norm": float(norm),
            "clipped": [flat(p.grad) for p in params]}


def main():
    shapes = {"lora_a": (3, 4), "tokens": (5,), "tiny": (2, 3)}
    adamw = [
        adamw_case("defaults_with_decay", 1, 0.9, 0.999, 1e-8, 0.01,
                   [1e-3, 2e-3, 3e-3, 3e-3, 1.5e-3, 0.0], shapes),
        adamw_case("low_betas_big_eps", 2, 0.8, 0.95, 1e-6, 0.1,
                   [3e-3, 3e-3, 3e-3, 3e-3], shapes),
        adamw_case("no_decay", 3, 0.9, 0.999, 1e-8, 0.0, [1e-2, 1e-2, 5e-3], shapes),
    ]
    schedules = [
        schedule_lrs("constant_with_warmup", 0, 6, 0.0, 3e-3),
        schedule_lrs("constant_with_warmup", 4, 10, 0.0, 3e-3),
        schedule_lrs("cosine", 0, 10, 0.0, 1.0),
        schedule_lrs("cosine", 3, 17, 0.0, 3e-3),
        schedule_lrs("cosine", 3, 17, 0.1, 3e-3),
        schedule_lrs("cosine", 5, 5, 0.0, 1e-3),
        schedule_lrs("linear", 0, 8, 0.0, 1.0),
        schedule_lrs("linear", 4, 12, 0.0, 3e-3),
    ]
    clip = [
        clip_case(10, 1.0, [(4, 3), (7,), (2, 2, 2)], 1.0),    # norm ~4.7: clipped
        clip_case(11, 100.0, [(4, 3), (7,)], 1.0),             # below max_norm: untouched
        clip_case(12, 0.5, [(64,), (3, 5)], 1e-3),             # tiny gradients
    ]
    out = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
           "adamw": adamw, "schedules": schedules, "clip": clip}
    for case in clip:
        assert math.isfinite(case["norm"])
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
