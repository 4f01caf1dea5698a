// xcomp bench train: the time of one full training step -- compressor_step (encoder with
// LoRA, decoder, loss, backward), gradient clipping and AdamW, as the trainer runs them --
// at a chosen model shape, with tokens/s, honest model FLOPs (trainer/step_flops.h) and
// MFU. With --reference it also runs tools/bench/torch_reference.py (Hugging Face
// transformers + PEFT, the paper's stack) on the same shape and batch and prints both
// rows and the ratio of their step times.
//
// Every sample is a full-length text of random tokens with regeneration targets, so both
// implementations see exactly the same amount of work whatever their padding rules.
#include <cblas.h>
#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "comm/process_group.h"
#include "model/compressor.h"
#include "model/input_error.h"
#include "model/llama.h"
#include "model/profiling_ops.h"
#include "model/random.h"
#include "trainer/adamw.h"
#include "trainer/backend.h"
#include "trainer/bench_environment.h"
#include "trainer/bench_shapes.h"
#include "trainer/benchmarks.h"
#include "trainer/command_line.h"
#include "trainer/cpu_threads.h"
#include "trainer/data_parallel.h"
#include "trainer/grad_clip.h"
#include "trainer/reference_script.h"
#include "trainer/step_flops.h"
#include "trainer/timing_statistics.h"
#include "trainer/training_communicator.h"

namespace xcomp {
namespace {

using Clock = std::chrono::steady_clock;

// How this process's OpenMP threads wait, for the table: libgomp reads it at start-up.
std::string wait_policy_note() {
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  return policy != nullptr && *policy != '\0' ? std::string("OMP_WAIT_POLICY=") + policy
                                               : std::string("OMP_WAIT_POLICY unset (spin, then sleep)");
}

struct Settings {
  std::string shape, device;
  int64_t batch, text_len, num_tokens, lora_r, steps, warmup, threads;
  double lora_alpha;
  CompressorMode mode;
  ActivationMemory activations = ActivationMemory::kKeep;
  std::optional<double> peak_tflops;
  bool profile = false;  // time every op of the timed steps (ProfilingOps)
  CudaConfig cuda;       // --attention, --attention-backward, --gemm (default: XCOMP_CUDA_*)
};

// One row of the table: what a run measured.
struct Measured {
  std::string impl;
  double step_s = 0;   // median wall time of a step
  double cpu_s = -1;   // median process CPU time of a step (all threads), -1 unknown
  double loss = 0;
  int64_t tokens_per_step = 0;
  std::optional<int64_t> peak_memory_bytes;
  std::string note;
  int ranks = 1;  // MPI ranks that each ran the step on their own batch
};

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// The peak_MiB column: on the CPU, the process's peak RSS; on a GPU, what the step's
// tensors needed at once (Ops::device_memory_needed_at_peak), the measure PyTorch's
// torch.cuda.max_memory_allocated gives the reference row.
int64_t peak_memory_bytes(Backend backend, const Ops& ops) {
  if (backend != Backend::kCpu) return ops.device_memory_needed_at_peak();
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

// B full-length texts of random ids (>= 3: not pad, BOS or EOS), regeneration targets.
CompressorBatch random_regeneration_batch(int64_t batch, int64_t len, int64_t vocab, int32_t bos, int32_t eos) {
  CompressorBatch b;
  b.text = Tensor::empty({batch, len}, DType::I32);
  b.decoder_tokens = Tensor::empty({batch, len + 1}, DType::I32);
  b.targets = Tensor::empty({batch, len + 1}, DType::I32);
  for (int64_t r = 0; r < batch; ++r) {
    int32_t* dec = b.decoder_tokens.data<int32_t>() + r * (len + 1);
    int32_t* tgt = b.targets.data<int32_t>() + r * (len + 1);
    dec[0] = bos;
    for (int64_t i = 0; i < len; ++i) {
      const auto id = static_cast<int32_t>(3 + counter_random_u64(1, RandomPurpose::kDataOrder, r, i) %
                                                   static_cast<uint64_t>(vocab - 3));
      b.text.data<int32_t>()[r * len + i] = id;
      dec[i + 1] = id;
      tgt[i] = id;
    }
    tgt[len] = eos;
    b.text_lengths.push_back(len);
    b.decoder_lengths.push_back(len + 1);
  }
  return b;
}

// Where the time of a step goes, op by op (matrix products by shape, with their rate),
// per step, and the products' share in all.
void print_profile(const ProfilingOps& profiler, int64_t steps) {
  double total = 0, product_seconds = 0, product_flops = 0;
  for (const auto& t : profiler.times()) {
    total += t.seconds;
    if (t.flops > 0) product_seconds += t.seconds, product_flops += t.flops;
  }
  std::fprintf(stderr, "per step, ops timed one at a time (%.4f s in ops):\n%-56s %8s %10s %6s %9s\n", total / steps,
               "op", "calls", "seconds", "share", "TFLOP/s");
  for (const auto& t : profiler.times()) {
    char rate[32] = "";
    if (t.flops > 0) std::snprintf(rate, sizeof rate, "%9.4g", t.flops / std::max(t.seconds, 1e-12) / 1e12);
    std::fprintf(stderr, "%-56s %8lld %10.5f %5.1f%% %s\n", t.op.c_str(), static_cast<long long>(t.calls / steps),
                 t.seconds / steps, 100.0 * t.seconds / std::max(total, 1e-12), rate);
  }
  std::fprintf(stderr, "matrix products: %.5f s a step (%.1f%%), %.4g TFLOP/s\n", product_seconds / steps,
               100.0 * product_seconds / std::max(total, 1e-12),
               product_flops / std::max(product_seconds, 1e-12) / 1e12);
}

Measured run_xcomp(const Settings& s, const std::string& fixtures) {
  const Backend backend = s.device == "cuda" ? Backend::kCuda : Backend::kCpu;
  std::unique_ptr<Ops> backend_ops =
      make_backend(backend, mpi_is_running() ? mpi_world_placement().local_rank : 0, CudaWeights::kBf16, s.cuda);
  // What the backend runs with (the kernels and allocator the flags or XCOMP_CUDA_* chose), before the table.
  if (!backend_ops->configuration().empty()) std::printf("backend %s: %s\n", backend_ops->name(),
                                                         backend_ops->configuration().c_str());
  ProfilingOps profiler(*backend_ops);
  Ops* ops = s.profile ? static_cast<Ops*>(&profiler) : backend_ops.get();
  const BenchShape& shape = find_bench_shape(s.shape);
  const auto t0 = Clock::now();
  // The CUDA backend keeps weight matrices in bf16; handing it bf16 halves host memory.
  BenchModel bench = make_bench_model(shape, backend == Backend::kCuda ? DType::BF16 : DType::F32, 0, fixtures);
  const LlamaConfig config = bench.config;
  LlamaModel model(config, std::move(bench.weights), *ops);
  bench.weights = LlamaWeights{};
  std::cerr << "bench train: " << s.shape << " ready in "
            << std::chrono::duration<double>(Clock::now() - t0).count() << " s\n";

  CompressorSettings cs;
  cs.mode = s.mode;
  cs.num_tokens = s.num_tokens;
  cs.lora.r = s.lora_r;
  cs.lora.alpha = s.lora_alpha;
  Compressor compressor(config, cs, 1);
  AdamW optimizer(AdamWOptions{});
  for (const auto& p : compressor.parameters()) optimizer.add_parameter(p.name, *p.value);
  // Under mpirun every rank times the same step on its own batch (weak scaling) and the
  // gradients are summed over ranks each step, as training does.
  const std::unique_ptr<Communicator> world = training_communicator(backend);
  DataParallel parallel(*world);
  parallel.broadcast_from_main(compressor.values());  // rank 0's values everywhere
  // As training keeps them: trainables, gradients and moments where the model computes.
  compressor.place_on(*ops);
  optimizer.place_on(*ops, compressor.values());
  std::vector<Tensor> grads = compressor.gradients();
  const CompressorBatch batch =
      random_regeneration_batch(s.batch, s.text_len, config.vocab_size, config.bos_token_id, config.eos_token_id);
  StepOptions options;
  options.token_weight = static_cast<float>(1.0 / static_cast<double>(s.batch * (s.text_len + 1)));
  options.end_id = config.eos_token_id;
  options.activations = s.activations;

  Measured m;
  m.impl = "xcomp";
  if (backend == Backend::kCpu) m.note = wait_policy_note();
  m.tokens_per_step = s.batch * (s.text_len + s.num_tokens) + s.batch * (s.text_len + 1) +
                      (s.mode == CompressorMode::kEmbedding ? s.batch * s.num_tokens : 0);
  std::vector<double> wall, cpu;
  for (int64_t step = 0; step < s.warmup + s.steps; ++step) {
    const auto start = Clock::now();
    const double cpu_start = process_cpu_seconds();
    compressor.zero_grad();
    options.dropout_stream = static_cast<uint64_t>(step);
    // As training: the gradient sum overlapped with backward where the communicator can.
    options.lora_gradients_ready = parallel.begin_gradient_sum(*ops, compressor);
    const CompressorLoss loss = compressor_step(model, compressor, batch, options);
    parallel.finish_gradient_sum();
    clip_grad_norm(*ops, grads, 1.0);
    optimizer.step(grads, 1e-4);
    ops->synchronize();  // the update may still be queued on a device: the step ends when it is done
    if (step < s.warmup) {
      profiler.reset();  // the profile covers the timed steps only
      continue;
    }
    wall.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    cpu.push_back(process_cpu_seconds() - cpu_start);
    m.loss = loss.sum;  // token_weight = 1 / targets: the mean
  }
  m.step_s = median(wall);
  m.cpu_s = median(cpu);
  m.ranks = parallel.world_size();
  m.peak_memory_bytes = peak_memory_bytes(backend, *ops);
  if (backend != Backend::kCpu) {
    // What the allocator held beside it (the caching allocator keeps each size's freed
    // blocks; an arena is reserved whole; which one: the backend line above).
    char held[96];
    std::snprintf(held, sizeof held, "peak: tensors at once; the allocator held %.0f MiB",
                  static_cast<double>(ops->device_memory_reserved()) / 1048576.0);
    m.note = held;
  }
  if (s.profile) print_profile(profiler, s.steps);
  return m;
}

// Runs the PyTorch anchor with the same settings; its last line of output is JSON.
// Unless the caller chose a wait policy, the anchor runs with passive OpenMP waiting:
// Debian's PyTorch 1.13 measured 2.4x slower on 2 threads when its threads spin
// (0.469 s vs 0.195 s a stories260K step on this project's 2-core machine), and the
// comparison is with PyTorch at its best.
Measured run_reference(const Settings& s, const std::string& python, const std::string& script) {
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  const bool policy_set = policy != nullptr && *policy != '\0';
  std::ostringstream cmd;
  if (!policy_set) cmd << "OMP_WAIT_POLICY=passive ";
  cmd << shell_quote(python) << " " << shell_quote(script) << " --shape " << s.shape << " --device " << s.device
      << " --batch " << s.batch << " --text-len " << s.text_len << " --num-tokens " << s.num_tokens << " --lora-r "
      << s.lora_r << " --lora-alpha " << s.lora_alpha << " --mode "
      << (s.mode == CompressorMode::kKeyValue ? "kv" : "embedding") << " --steps " << s.steps << " --warmup "
      << s.warmup << " --threads " << s.threads;
  const nlohmann::json j = run_reference_script(cmd.str(), script);
  if (!j.contains("step_s_median")) throw_input_error("--reference: ", script, " printed no step_s_median: ", j.dump());
  Measured m;
  m.impl = "pytorch";
  m.step_s = j["step_s_median"].get<double>();
  m.cpu_s = j.value("cpu_s_median", -1.0);
  m.loss = j.value("loss", 0.0);
  m.tokens_per_step = j.value("tokens_per_step", int64_t{0});
  if (j.contains("peak_memory_bytes") && j["peak_memory_bytes"].is_number())
    m.peak_memory_bytes = j["peak_memory_bytes"].get<int64_t>();
  m.note = "torch " + j.value("torch", std::string("?")) + ", transformers " + j.value("transformers", std::string("?")) +
           ", peft " + j.value("peft", std::string("?")) + ", " + j.value("dtype", std::string("?")) + ", " +
           j.value("attention", std::string("?")) + " attention, " +
           (policy_set ? wait_policy_note() : std::string("OMP_WAIT_POLICY=passive"));
  if (s.device == "cuda") m.note += "; peak: torch.cuda.max_memory_allocated";
  return m;
}

void print_header() {
  std::printf("%-8s %10s %9s %11s %12s %9s %7s %10s  %s\n", "impl", "step_s", "cpu_s", "tokens/s", "TFLOP/s", "MFU",
              "loss", "peak_MiB", "");
}

void print_row(const Measured& m, double flops, const std::optional<double>& peak_tflops) {
  const double tflops = flops / m.step_s / 1e12;
  char mfu[32] = "n/a";
  if (peak_tflops) std::snprintf(mfu, sizeof mfu, "%.2f%%", 100.0 * tflops / *peak_tflops);
  char cpu[32] = "n/a";
  if (m.cpu_s >= 0) std::snprintf(cpu, sizeof cpu, "%.4f", m.cpu_s);
  char mem[32] = "n/a";
  if (m.peak_memory_bytes) std::snprintf(mem, sizeof mem, "%.0f", static_cast<double>(*m.peak_memory_bytes) / 1048576.0);
  std::printf("%-8s %10.4f %9s %11.0f %12.4f %9s %7.3f %10s  %s\n", m.impl.c_str(), m.step_s, cpu,
              static_cast<double>(m.tokens_per_step) / m.step_s, tflops, mfu, m.loss, mem, m.note.c_str());
  std::fflush(stdout);
}

}  // namespace

int run_train_benchmark(const std::vector<std::string>& args) {
  // Under mpirun rank 0 reports for all; the others compute and communicate silently.
  if (mpi_is_running() && mpi_world_placement().rank != 0 && std::freopen("/dev/null", "w", stdout) == nullptr)
    throw_input_error("bench train: cannot silence rank ", mpi_world_placement().rank, "'s output");
  CommandLine cl(
      "bench train",
      "[--shape NAME] [--device cpu|cuda] [--batch B] [--text-len L] [--num-tokens N] [--lora-r R] "
      "[--mode kv|embedding] [--activations keep|recompute] [--attention KERNELS] [--attention-backward KERNELS] "
      "[--gemm PATH] [--steps S] [--warmup W] "
      "[--threads T] [--peak-tflops P] [--reference]",
      {{"shape", "NAME", "stories260k (default; the fixture's weights), dim512, llama3.2-1b, llama3-8b (random weights)"},
       {"device", "DEV", "cpu (default) or cuda"},
       {"batch", "B", "samples per step (default 8)"},
       {"text-len", "L", "tokens per text (default 96; 480 for the llama shapes); decoder input L + 1"},
       {"num-tokens", "N", "compression tokens (default 16)"},
       {"lora-r", "R", "LoRA rank on q_proj, v_proj (default 16; 64 for the llama shapes)"},
       {"lora-alpha", "A", "LoRA alpha (default 2 R)"},
       {"mode", "MODE", "kv (default) or embedding"},
       {"activations", "HOW", "keep (default) or recompute, as train.activations (xcomp only: the PyTorch reference keeps "
                              "them)"},
       {"attention", "KERNELS", "cuda only: gemm, gemm_causal (default), gemm_causal_bf16, flash, flash_bf16 or "
                                "tiled, forward and backward (as cuda.attention and cuda.attention_backward)"},
       {"attention-backward", "KERNELS", "cuda only: the backward's kernels where they differ from --attention's "
                                         "(e.g. gemm_causal_bf16 beside the default forward)"},
       {"gemm", "PATH", "cuda only: the bf16 and TF32 products through cublas (cublasGemmEx, default), lt (cuBLASLt's "
                        "heuristic) or lt_tuned (the fastest of its candidates); as cuda.gemm"},
       {"steps", "S", "timed steps; the median is reported (default 10)"},
       {"warmup", "W", "untimed steps first (default 2)"},
       {"threads", "T", "CPU threads (OpenMP and BLAS; default: the cores divided by the ranks on this node)"},
       {"peak-tflops", "P", "peak of the device for MFU (default 989, H100 bf16 dense, on cuda; none on cpu)"},
       {"reference", "", "also run tools/bench/torch_reference.py with the same settings"},
       {"profile", "", "time each op of the timed steps, waiting for the device around each (slower)"},
       {"python", "PATH", "Python for --reference (default $XCOMP_PYTHON or /tmp/refvenv/bin/python)"},
       {"reference-script", "PATH", "default tools/bench/torch_reference.py (run from the checkout)"}});
  if (!cl.parse(args)) return 0;
  cl.expect_positional(0, 0);
  Settings s;
  s.shape = cl.get("shape", "stories260k");
  const BenchShape& shape = find_bench_shape(s.shape);
  s.device = name_of(value_named<Backend>(cl.get("device", "cpu"), "--device"));
  s.batch = cl.get_int("batch", 8, 1, 1 << 16);
  s.text_len = cl.get_int("text-len", shape.text_len, 1, 1 << 20);
  s.num_tokens = cl.get_int("num-tokens", 16, 1, 1 << 16);
  s.lora_r = cl.get_int("lora-r", shape.lora_r, 1, 1 << 16);
  s.lora_alpha = cl.get_double("lora-alpha", 2.0 * static_cast<double>(s.lora_r), 0.0, 1e9);
  const std::string mode = cl.get("mode", "kv");
  if (mode != "kv" && mode != "embedding") throw_input_error("--mode: expected kv or embedding, got '", mode, "'");
  s.mode = mode == "kv" ? CompressorMode::kKeyValue : CompressorMode::kEmbedding;
  s.activations = value_named<ActivationMemory>(cl.get("activations", "keep"), "--activations");
  s.steps = cl.get_int("steps", 10, 1, 1 << 20);
  s.warmup = cl.get_int("warmup", 2, 0, 1 << 20);
  s.threads = cpu_threads_for(cl.get_int("threads", 0, 0, 4096));
  if (cl.has("peak-tflops")) {
    s.peak_tflops = cl.get_double("peak-tflops", 0.0, 1e-9, 1e9);
  } else if (s.device == "cuda") {
    s.peak_tflops = 989.0;
  }
  s.profile = cl.has("profile");
  // The CUDA backend's choices, as a run's cuda: keys make them; each E spelled as there.
  const auto cuda_option = [&](auto e, const char* option) {
    if (s.device != "cuda")
      throw_input_error("--", option, " chooses the CUDA backend's kernels: it needs --device cuda");
    return value_named<decltype(e)>(cl.get(option, ""), std::string("--") + option);
  };
  if (cl.has("attention"))
    s.cuda.attention = s.cuda.attention_backward = cuda_option(CudaAttentionChoice{}, "attention");
  if (cl.has("attention-backward"))
    s.cuda.attention_backward = cuda_option(CudaAttentionChoice{}, "attention-backward");
  if (cl.has("gemm")) s.cuda.gemm = cuda_option(CudaGemmChoice{}, "gemm");
  use_cpu_threads(static_cast<int>(s.threads));
  const std::string fixtures = bench_fixtures_dir();

  const LlamaConfig config = bench_config(shape, fixtures);
  CompressorSettings cs;
  cs.mode = s.mode;
  cs.num_tokens = s.num_tokens;
  cs.lora.r = s.lora_r;
  const StepFlops flops = compressor_step_flops(config, cs, {s.batch, s.text_len, s.num_tokens, s.text_len + 1});
  std::printf("bench train: %s (hidden %ld, %ld layers, %ld/%ld heads, intermediate %ld, vocab %ld), %s, %ld threads\n",
              s.shape.c_str(), static_cast<long>(config.hidden_size), static_cast<long>(config.num_hidden_layers),
              static_cast<long>(config.num_attention_heads), static_cast<long>(config.num_key_value_heads),
              static_cast<long>(config.intermediate_size), static_cast<long>(config.vocab_size), s.device.c_str(),
              static_cast<long>(s.threads));
  std::printf(
      "batch %ld x text %ld, N %ld, %s mode, LoRA r %ld alpha %g on q,v, activations: %s; median of %ld steps after "
      "%ld warm-up\n",
      static_cast<long>(s.batch), static_cast<long>(s.text_len), static_cast<long>(s.num_tokens), mode.c_str(),
      static_cast<long>(s.lora_r), s.lora_alpha, name_of(s.activations), static_cast<long>(s.steps),
      static_cast<long>(s.warmup));
  std::printf("model FLOPs per step %.4g (encoder %.3g, decoder %.3g, LoRA %.3g, attention %.3g); peak %s\n",
              flops.total(), flops.encoder_matmul, flops.decoder_matmul, flops.lora, flops.attention,
              s.peak_tflops ? (std::to_string(*s.peak_tflops) + " TFLOP/s").c_str() : "n/a");
  const Measured mine = run_xcomp(s, fixtures);
  print_header();
  print_row(mine, flops.total(), s.peak_tflops);
  if (mine.ranks > 1)
    std::printf("%d ranks, each its own batch of %ld, gradients summed every step: %.1f samples/s per rank, %.1f in all\n",
                mine.ranks, static_cast<long>(s.batch), s.batch / mine.step_s, mine.ranks * s.batch / mine.step_s);
  if (cl.has("reference") && mine.ranks > 1)
    throw_input_error("bench train: --reference runs PyTorch on one process; run it without mpirun");
  if (cl.has("reference")) {
    const std::string python = cl.get("python", env_or("XCOMP_PYTHON", "/tmp/refvenv/bin/python"));
    const Measured ref = run_reference(s, python, cl.get("reference-script", "tools/bench/torch_reference.py"));
    print_row(ref, flops.total(), s.peak_tflops);
    std::printf("xcomp is %.2fx PyTorch's speed (step time %.4f s vs %.4f s)", ref.step_s / mine.step_s, mine.step_s,
                ref.step_s);
    // On a shared machine CPU time is the steadier measure of a one-thread run.
    if (s.device == "cpu" && mine.cpu_s > 0 && ref.cpu_s > 0)
      std::printf("; %.2fx by CPU time per step", ref.cpu_s / mine.cpu_s);
    std::printf("\n");
  }
  return 0;
}

}  // namespace xcomp
