#!/usr/bin/env bash
# The small-scale study behind README "Results": for one model, train and evaluate every
# row (regeneration at several compression ratios in both modes, then QA fine-tuning from
# the regeneration checkpoints) with the same budget of optimizer steps each, then write
# the table. Every row is resumable and reused: a finished run is not trained again and
# an evaluation newer than its checkpoint is not redone, so an interrupted study picks up
# where it stopped.
#
#   tools/study.sh stories260k              # every row of that model, then the table
#   tools/study.sh smollm2 regen            # only the regeneration rows
#   tools/study.sh stories260k row regen-kv-n16-l96   # one row (names: tools/study.sh MODEL list)
#   tools/study.sh stories260k table        # the table from what has run so far
#
# Environment: STUDY_DIR (default runs/study), XCOMP (the binary; default build/xcomp,
# built when missing), XCOMP_FIXTURES, XCOMP_MODELS, STUDY_BACKEND (cpu or cuda: a row
# trains and is evaluated there; on cuda with STUDY_CUDA_WEIGHTS, default f32, the CPU
# backend's arithmetic up to summation order, or bf16),
# STUDY_THREADS (fixed per model so a rerun is bit-identical on the CPU backend);
# STUDY_EVAL_BATCH (items `xcomp eval` decodes together: 1 for stories260k, whose rows
# were evaluated one at a time, 16 for smollm2, where decoding one at a time is bound by
# reading the weights);
# STUDY_REGEN_STEPS, STUDY_QA_STEPS, STUDY_EVAL_LIMIT change the budgets (smoke tests;
# the README's rows use the defaults); STUDY_SEED (default 0) seeds the initialisation,
# dropout and the data order (seed and data.shuffle_seed) of every row: give each seed
# its own STUDY_DIR.
# The base model's full-text and no-prefix baselines are decoded once per text length and
# once per QA set: a row evaluated after another on the same data, the same way, evaluates
# only its compressed system (RUN/eval/baselines_from names the row the table takes them
# from).
# Every xcomp command is echoed to stderr and appended to $STUDY_DIR/MODEL/commands.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
model="${1:?usage: tools/study.sh stories260k|smollm2 [all|regen|qa|list|table|row NAME]}"
what="${2:-all}"
fixtures="${XCOMP_FIXTURES:-$root/../shared/fixtures}"
models="${XCOMP_MODELS:-$HOME/.cache/xcomp}"
export XCOMP_FIXTURES="$fixtures" XCOMP_MODELS="$models"
dir="${STUDY_DIR:-runs/study}/$model"
backend="${STUDY_BACKEND:-cpu}"
cuda_weights="${STUDY_CUDA_WEIGHTS:-f32}"
device_args=() eval_device_args=()  # what a row adds on the GPU, to training and to evaluation
if [[ $backend == cuda ]]; then
  device_args=(cuda_weights="$cuda_weights") eval_device_args=(--device cuda --cuda-weights "$cuda_weights")
fi
xcomp="${XCOMP:-$root/build/xcomp}"
[[ -x "$xcomp" ]] || xcomp="$(bash "$root/launch/build.sh")/xcomp"
mkdir -p "$dir"

# Per model: data, configs and budgets. Every regeneration row gets the same steps, and
# every QA row the same steps from its regeneration checkpoint.
case "$model" in
  stories260k)
    threads="${STUDY_THREADS:-1}" eval_batch="${STUDY_EVAL_BATCH:-1}"
    regen_steps=${STUDY_REGEN_STEPS:-300} qa_steps=${STUDY_QA_STEPS:-300} regen_eval=${STUDY_EVAL_LIMIT:-200} qa_eval=${STUDY_EVAL_LIMIT:-300}
    regen_config=configs/stories260k-regen-kv.yaml
    qa_config=configs/stories260k-babi-qa-kv.yaml
    none_config=configs/stories260k-babi-qa-none.yaml
    tokenizer=(--tokenizer "$fixtures/stories260K/tok512.model")
    regen_data=("$dir/data/tinystories")
    qa_sets=(babi1 babi2 babi6)
    ;;
  smollm2)
    threads="${STUDY_THREADS:-2}" eval_batch="${STUDY_EVAL_BATCH:-16}"
    regen_steps=${STUDY_REGEN_STEPS:-200} qa_steps=${STUDY_QA_STEPS:-200} regen_eval=${STUDY_EVAL_LIMIT:-100} qa_eval=${STUDY_EVAL_LIMIT:-200}
    regen_config=configs/smollm2-regen-kv.yaml
    qa_config=configs/smollm2-squad-qa-kv.yaml
    none_config=configs/smollm2-squad-qa-none.yaml
    tokenizer=(--model "$models/SmolLM2-135M-Instruct.Q4_1.gguf")
    regen_data=("$dir/data/arxiv" "$dir/data/tinystories")
    qa_sets=(squad babi1 babi2 babi6)
    ;;
  *) echo "study: unknown model '$model' (stories260k or smollm2)" >&2; exit 2 ;;
esac

run() {  # echo, record, run
  printf '%q ' "$@" | sed 's/ $//' | tee -a "$dir/commands.sh" >&2
  echo >>"$dir/commands.sh"; echo >&2
  "$@"
}

# The bAbI tasks of the study and their files in the fixtures.
declare -A babi_files=([babi1]=qa1_single-supporting-fact [babi2]=qa2_two-supporting-facts
  [babi6]=qa6_yes-no-questions)

# prepare SET...: writes the shards of each named data set (tinystories, arxiv, squad,
# babi1, babi2, babi6) that are not there yet. A row prepares only what it reads, so one
# row runs where only its own data exists (a lent GPU machine, say, which has no fixtures).
prepare() {
  local set
  for set in "$@"; do
    case $set in
      tinystories)
        [[ -f "$dir/data/tinystories/train-00000.h5" ]] && continue
        run "$xcomp" prepare --format text --input "$fixtures/tinystories/tinystories_sample.txt" \
          --out "$dir/data/tinystories" "${tokenizer[@]}" --split-by hash --test-fraction 0.15 --overwrite
        ;;
      arxiv)
        [[ -f "$dir/data/arxiv/train-00000.h5" ]] && continue
        run "$xcomp" prepare --format arxiv --input "$fixtures/arxiv/arxiv-metadata-oai-snapshot.first200.jsonl" \
          --out "$dir/data/arxiv" "${tokenizer[@]}" --split-by hash --test-fraction 0.15 --overwrite
        ;;
      squad)
        [[ -f "$dir/data/squad/train-00000.h5" ]] && continue
        # Split by context: a context and all its questions fall on one side.
        run "$xcomp" prepare --format mrqa --input "$fixtures/qa/mrqa_SQuAD_dev.jsonl.gz" \
          --out "$dir/data/squad" "${tokenizer[@]}" --split-by hash --test-fraction 0.2 --overwrite
        ;;
      babi1 | babi2 | babi6)
        [[ -f "$dir/data/$set/test-00000.h5" ]] && continue
        local file=${babi_files[$set]}
        run "$xcomp" prepare --format babi --input "$fixtures/babi/${file}_train.txt" --out "$dir/data/$set" \
          "${tokenizer[@]}" --split train --overwrite
        # bAbI ships its splits as two files; prepare refuses a directory that holds shards,
        # so the test split is written beside it and moved in.
        run "$xcomp" prepare --format babi --input "$fixtures/babi/${file}_test.txt" --out "$dir/data/$set.test" \
          "${tokenizer[@]}" --split test --overwrite
        mv "$dir/data/$set.test"/test-*.h5 "$dir/data/$set/" && rmdir "$dir/data/$set.test"
        ;;
      *) echo "study: no data set '$set'" >&2; exit 2 ;;
    esac
  done
}

# row_sets ROW: the data sets ROW reads (a QA row from a regeneration checkpoint also
# reads the regeneration data, to train or evaluate that row first when it has not run).
row_sets() {
  local regen_sets=("${regen_data[@]##*/}")
  case $1 in
    regen-*) echo "${regen_sets[@]}" ;;
    qa-*-none) [[ $1 =~ ^qa-([a-z0-9]+)- ]] && echo "${BASH_REMATCH[1]}" ;;
    qa-*) [[ $1 =~ ^qa-([a-z0-9]+)- ]] && echo "${regen_sets[@]} ${BASH_REMATCH[1]}" ;;
  esac
}

globs() {  # the shards of the given data dirs for one split, as a YAML list
  local split=$1; shift
  local out="" d
  for d in "$@"; do out+="${out:+, }\"$d/$split-*.h5\""; done
  echo "[$out]"
}

common() {  # RUN_DIR STEPS: the keys every row sets
  echo run_dir="$1" backend="$backend" threads="$threads" resume=auto seed="${STUDY_SEED:-0}" \
    data.shuffle_seed="${STUDY_SEED:-0}" train.steps="$2" \
    train.warmup_steps=$(($2 < 300 ? $2 / 10 : 30)) eval.every="$2" checkpoint.every=100 log.progress=never \
    ${device_args[@]+"${device_args[@]}"}
}

# finished RUN STEPS: true when RUN has trained all STEPS (its last metrics line is that
# step and the trained tensors are written): then the row's training is not started
# again, and its trainable.safetensors keeps the time its evaluation is compared with.
finished() {
  [[ -f "$1/trainable.safetensors" && -f "$1/metrics.jsonl" ]] && tail -n 1 "$1/metrics.jsonl" | grep -q "\"step\":$2[,}]"
}

# trained RUN STEPS: stops the study when RUN's training ended early (a stop signal
# leaves a checkpoint and exits cleanly): a partial checkpoint is not evaluated.
trained() {
  finished "$1" "$2" && return
  echo "study: $1 stopped before step $2; run the same command again to resume it" >&2
  exit 3
}

# evaluated RUN: RUN/eval is newer than the checkpoint it evaluates.
evaluated() {
  [[ -f "$1/eval/report.json" && "$1/eval/report.json" -nt "$1/trainable.safetensors" ]]
}

# evaluate RUN TASK LIMIT SYSTEMS DATA... : writes RUN/eval unless it is newer than the
# checkpoint.
evaluate() {
  local run_dir=$1 task=$2 limit=$3 systems=$4; shift 4
  local args=() d
  for d in "$@"; do args+=(--data "$d/test-*.h5"); done
  evaluated "$run_dir" && return
  run "$xcomp" eval --checkpoint "$run_dir" --task "$task" "${args[@]}" --limit "$limit" --systems "$systems" \
    --threads "$threads" --batch "$eval_batch" ${eval_device_args[@]+"${eval_device_args[@]}"} \
    --out "$run_dir/eval" >/dev/null
}

# baseline_row ROW LIMIT CANDIDATE...: the first CANDIDATE row (a run directory name)
# whose evaluation decoded the base model's full-text and no-prefix baselines as ROW's
# would (same task, data, items, context length, device, weights and batch), or nothing.
# Those two systems read neither a row's checkpoint nor its other settings, so a row that
# finds one decodes only its compressed system and the table takes the baselines from
# there (RUN/eval/baselines_from). The callers pass rows on the same data: regeneration
# rows at one text length, or QA rows on one set.
baseline_row() {
  local self=$1 limit=$2 candidate; shift 2
  for candidate in "$@"; do
    [[ $candidate != "$self" && -f $dir/$candidate/eval/report.json && ! -f $dir/$candidate/eval/baselines_from ]] || continue
    if python3 - "$dir/$candidate/eval/report.json" "$dir/$self/config.yaml" "$limit" "$eval_batch" "$backend" \
        "$cuda_weights" <<'PY'
import json, re, sys
path, config, limit, batch, device, weights = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
report = json.load(open(path))
# The row's own context length, from the configuration its training resolved and wrote.
length = re.search(r"^\s+max_text_len:\s*(\d+)", open(config).read(), re.M)
systems = report["results"][0]["systems"] if report.get("results") else {}
same = (length is not None and report.get("max_text_len") == int(length.group(1))
        # The same items: the same limit (a longer text length may leave fewer texts than
        # the limit; reports written before `limit` was recorded had to have all of them).
        and (report.get("limit") == limit if "limit" in report
             else all(systems.get(s, {}).get("items") == limit for s in ("full_context", "no_context")))
        and all(s in systems for s in ("full_context", "no_context"))
        and report.get("batch") == batch and report.get("device") == device
        and report.get("baseline_prompt") == "plain"
        and (device != "cuda" or report.get("cuda_weights") == weights))
sys.exit(0 if same else 1)
PY
    then
      echo "$candidate"
      return
    fi
  done
}

# evaluate_row ROW TASK LIMIT CANDIDATES DATA...: evaluates ROW's compressed system, and
# the baselines too unless one of the space-separated CANDIDATES rows has them.
evaluate_row() {
  local name=$1 task=$2 limit=$3 candidates=$4; shift 4
  local run_dir="$dir/$name" baselines="" systems=compressed,full_context,no_context
  evaluated "$run_dir" && return
  # shellcheck disable=SC2086  # CANDIDATES is a list of directory names
  [[ $limit -gt 0 ]] && baselines=$(baseline_row "$name" "$limit" $candidates)
  [[ -n $baselines ]] && systems=compressed
  rm -f "$run_dir/eval/baselines_from"
  evaluate "$run_dir" "$task" "$limit" "$systems" "$@"
  [[ -z $baselines ]] || echo "$baselines" > "$run_dir/eval/baselines_from"
}

rows_like() {  # GLOB: the names of the study's run directories that match it
  local d
  for d in "$dir"/$1; do [[ -d $d ]] && basename "$d"; done
  return 0
}

# regen-kv[-after]-nN-lL, or regen-embedding[-xS]-nN-lL: -after gives the decoder
# positions after the prefix (compressor.decoder_positions); -xS multiplies embedding
# mode's memory slots by S (compressor.memory_scale, an experiment beside the method;
# not among `list`'s rows).
regen_row() {
  local name=$1 mode positions=reference scale=() n l
  [[ $name =~ ^regen-(kv|embedding)(-after)?(-x([0-9]*\.?[0-9]+))?-n([0-9]+)-l([0-9]+)$ ]] || { echo "study: bad row $name" >&2; exit 2; }
  mode=${BASH_REMATCH[1]}; [[ -n ${BASH_REMATCH[2]} ]] && positions=after_prefix
  [[ -n ${BASH_REMATCH[4]} ]] && scale=(compressor.memory_scale="${BASH_REMATCH[4]}")
  n=${BASH_REMATCH[5]} l=${BASH_REMATCH[6]}
  if [[ ($mode == embedding && $positions != reference) || ($mode == kv && ${#scale[@]} -gt 0) ]]; then
    echo "study: bad row $name (-after is for kv rows, -xS for embedding rows)" >&2; exit 2
  fi
  local run_dir="$dir/$name"
  finished "$run_dir" "$regen_steps" || run "$xcomp" train --config "$regen_config" $(common "$run_dir" "$regen_steps") \
    compressor.mode="$mode" compressor.num_tokens="$n" compressor.max_text_len="$l" \
    compressor.decoder_positions="$positions" ${scale[@]+"${scale[@]}"} \
    "data.train=$(globs train "${regen_data[@]}")" "data.validation=$(globs test "${regen_data[@]}")" >/dev/null
  trained "$run_dir" "$regen_steps"
  evaluate_row "$name" regeneration "$regen_eval" "$(rows_like "regen-*-l$l")" "${regen_data[@]}"
}

qa_row() {  # qa-SET-MODE-nN (from regen-MODE-nN-l96) or qa-SET-none
  local name=$1 set mode n=0
  [[ $name =~ ^qa-([a-z0-9]+)-(kv|embedding|none)(-n([0-9]+))?$ ]] || { echo "study: bad row $name" >&2; exit 2; }
  set=${BASH_REMATCH[1]} mode=${BASH_REMATCH[2]} n=${BASH_REMATCH[4]:-0}
  local run_dir="$dir/$name" data="$dir/data/$set" config=$qa_config init=()
  if [[ $mode == none ]]; then
    config=$none_config
  else
    regen_row "regen-$mode-n$n-l96"
    init=(train.init_from="$dir/regen-$mode-n$n-l96" compressor.mode="$mode" compressor.num_tokens="$n")
  fi
  finished "$run_dir" "$qa_steps" || run "$xcomp" train --config "$config" $(common "$run_dir" "$qa_steps") "${init[@]}" \
    "data.train=$(globs train "$data")" "data.validation=$(globs test "$data")" >/dev/null
  trained "$run_dir" "$qa_steps"
  evaluate_row "$name" qa "$qa_eval" "$(rows_like "qa-$set-*")" "$data"
}

rows() {
  local kind=$1 set
  if [[ $kind == regen || $kind == all ]]; then
    for mode in kv embedding kv-after; do for n in 1 4 16; do echo "regen-$mode-n$n-l96"; done; done
    for mode in kv embedding; do for l in 192 384; do echo "regen-$mode-n16-l$l"; done; done
  fi
  if [[ $kind == qa || $kind == all ]]; then
    for set in "${qa_sets[@]}"; do
      for mode in kv embedding; do for n in 16 1; do echo "qa-$set-$mode-n$n"; done; done
      echo "qa-$set-none"
    done
  fi
}

do_row() { case $1 in regen-*) regen_row "$1" ;; qa-*) qa_row "$1" ;; *) echo "study: bad row $1" >&2; exit 2 ;; esac; }

case "$what" in
  list) rows all; exit 0 ;;
  table) ;;
  row)
    row_name="${3:?row NAME}"
    # shellcheck disable=SC2046  # the set names are single words
    prepare $(row_sets "$row_name")
    do_row "$row_name"
    ;;
  all|regen|qa)
    for r in $(rows "$what"); do
      # shellcheck disable=SC2046
      prepare $(row_sets "$r")
      do_row "$r"
    done
    ;;
  *) echo "study: unknown '$what' (all, regen, qa, list, table, row NAME)" >&2; exit 2 ;;
esac
python3 "$root/tools/study_table.py" "$dir" >"$dir/results.md"
cat "$dir/results.md"
