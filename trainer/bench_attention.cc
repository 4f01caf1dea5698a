// xcomp bench attention: the attention op alone, forward and backward, at a training
// step's two shapes (the encoder's T = text + N queries with no prefix, the decoder's
// text + 1 queries after an N-entry compressed prefix), for each of the CUDA backend's
// kernels side by side in one run (or the CPU backend's): milliseconds, TFLOP/s by the
// FLOP count `bench train` uses for attention, and how far each kernel's results are
// from the first one's, so one short GPU run compares the kernels' speed and agreement
// at the real shape before a whole step is timed. --reference adds PyTorch's attention as
// Hugging Face's LLaMA runs it (tools/bench/torch_attention_reference.py: repeat_kv, then
// scaled_dot_product_attention in bf16) on the same shapes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "io/config.h"
#include "model/compressor.h"
#include "model/input_error.h"
#include "model/tensor_difference.h"
#include "trainer/backend.h"
#include "trainer/bench_environment.h"
#include "trainer/bench_shapes.h"
#include "trainer/benchmarks.h"
#include "trainer/command_line.h"
#include "trainer/cpu_threads.h"
#include "trainer/reference_script.h"
#include "trainer/step_flops.h"
#include "trainer/timing_statistics.h"

namespace xcomp {
namespace {

struct AttentionShape {
  const char* call;  // encoder or decoder
  int64_t batch, t, prefix, heads, kv_heads, d;
};

struct HostInputs {
  Tensor q, k, v, dout, valid;
};

Tensor random_tensor(Shape shape, uint32_t seed, float amplitude) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-amplitude, amplitude);
  Tensor t = Tensor::empty(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(gen);
  return t;
}

// The stores as a training step makes them (decoder_store_capacity: the decoder's hold a
// multiple of 8 entries, the extra ones not valid).
HostInputs inputs_for(const AttentionShape& s) {
  const int64_t length = s.prefix + s.t, capacity = decoder_store_capacity(s.prefix, length);
  HostInputs in;
  in.q = random_tensor({s.batch, s.t, s.heads, s.d}, 1, 2.0f);
  in.k = random_tensor({s.batch, capacity, s.kv_heads, s.d}, 2, 2.0f);
  in.v = random_tensor({s.batch, capacity, s.kv_heads, s.d}, 3, 1.0f);
  in.dout = random_tensor({s.batch, s.t, s.heads, s.d}, 4, 1.0f);
  in.valid = Tensor::zeros({s.batch, capacity}, DType::I32);
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t i = 0; i < length; ++i) in.valid.data<int32_t>()[b * capacity + i] = 1;
  return in;
}

struct Results {
  double forward_ms = 0, backward_ms = 0;
  Tensor out, dq, dk, dv;  // host copies of the last run's results
};

Results measure(Ops& ops, const AttentionShape& s, const HostInputs& in, int64_t warmup, int64_t repeats) {
  const int64_t length = s.prefix + s.t;
  const Tensor q = ops.upload(in.q), k = ops.upload(in.k), v = ops.upload(in.v), dout = ops.upload(in.dout);
  const Tensor valid = ops.upload(in.valid);
  Tensor out = ops.empty(q.shape()), dq = ops.empty(q.shape()), dk = ops.zeros(k.shape()), dv = ops.zeros(v.shape());
  std::vector<double> forward, backward;
  using Clock = std::chrono::steady_clock;
  for (int64_t i = 0; i < warmup + repeats; ++i) {
    ops.zero(dk);
    ops.zero(dv);
    ops.synchronize();
    const Clock::time_point t0 = Clock::now();
    ops.attention(q, k, v, length, valid, out);
    ops.synchronize();
    const Clock::time_point t1 = Clock::now();
    ops.attention_backward(dout, q, k, v, length, valid, dq, dk, dv);
    ops.synchronize();
    const Clock::time_point t2 = Clock::now();
    if (i < warmup) continue;
    forward.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    backward.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
  }
  Results r;
  r.forward_ms = median(forward);
  r.backward_ms = median(backward);
  r.out = ops.download(out);
  r.dq = ops.download(dq);
  r.dk = ops.download(dk);
  r.dv = ops.download(dv);
  return r;
}

// flops: the call's forward FLOPs (attention_forward_flops); backward counts twice that.
void print_row(const AttentionShape& s, double flops, const std::string& kernels, double forward_ms,
               double backward_ms, const std::string& note) {
  std::printf("%-8s %-16s %5ld %6ld %10.3f %11.3f %9.3g %9.3g  %s\n", s.call, kernels.c_str(), static_cast<long>(s.t),
              static_cast<long>(s.prefix), forward_ms, backward_ms, flops / (forward_ms * 1e9),
              2 * flops / (backward_ms * 1e9), note.c_str());
  std::fflush(stdout);
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');)
    if (!part.empty()) parts.push_back(part);
  return parts;
}

// A backend whose attention kernels are `kernels` both ways; "cpu" is the CPU backend.
std::unique_ptr<Ops> backend_with(const std::string& kernels) {
  if (kernels == "cpu") return make_backend(Backend::kCpu);
  CudaConfig cuda;
  cuda.attention = cuda.attention_backward = value_named<CudaAttentionChoice>(kernels, "--kernels");
  return make_backend(Backend::kCuda, 0, CudaWeights::kBf16, cuda);
}

}  // namespace

int run_attention_benchmark(const std::vector<std::string>& args) {
  CommandLine cl("bench attention",
                 "[--shape NAME] [--device cpu|cuda] [--batch B] [--text-len L] [--num-tokens N] [--kernels K,...] "
                 "[--repeats R] [--warmup W] [--threads T] [--reference]",
                 {{"shape", "NAME", "stories260k (default), dim512, llama3.2-1b or llama3-8b: heads and head_dim"},
                  {"device", "DEV", "cpu (default) or cuda"},
                  {"batch", "B", "samples (default 8)"},
                  {"text-len", "L", "tokens per text (default: the shape's, 480 for the llama shapes)"},
                  {"num-tokens", "N", "compression tokens (default 16)"},
                  {"kernels", "K,...", "cuda: the kernels to compare, the first the reference of the differences "
                                       "(default gemm,gemm_causal,gemm_causal_bf16,flash,flash_bf16,tiled; bf16 "
                                       "weights, as training)"},
                  {"repeats", "R", "timed runs; the median is reported (default 10)"},
                  {"warmup", "W", "untimed runs first (default 2)"},
                  {"threads", "T", "CPU threads (default: all cores)"},
                  {"reference", "", "also time PyTorch's attention (tools/bench/torch_attention_reference.py)"},
                  {"python", "PATH", "Python for --reference (default $XCOMP_PYTHON or /tmp/refvenv/bin/python)"},
                  {"reference-script", "PATH", "default tools/bench/torch_attention_reference.py (run from the checkout)"}});
  if (!cl.parse(args)) return 0;
  cl.expect_positional(0, 0);
  const BenchShape& shape = find_bench_shape(cl.get("shape", "stories260k"));
  const Backend device = value_named<Backend>(cl.get("device", "cpu"), "--device");
  const int64_t batch = cl.get_int("batch", 8, 1, 1 << 16);
  const int64_t text_len = cl.get_int("text-len", shape.text_len, 1, 1 << 20);
  const int64_t num_tokens = cl.get_int("num-tokens", 16, 1, 1 << 16);
  const int64_t repeats = cl.get_int("repeats", 10, 1, 1 << 20);
  const int64_t warmup = cl.get_int("warmup", 2, 0, 1 << 20);
  std::vector<std::string> kernels{"cpu"};
  if (device == Backend::kCuda) {
    kernels = cl.has("kernels") ? split_commas(cl.get("kernels")) : cuda_attention_kernel_names();
    for (const std::string& k : kernels) value_named<CudaAttentionChoice>(k, "--kernels");  // before any run
    if (kernels.empty()) throw_input_error("--kernels: no kernel named");
  } else if (cl.has("kernels")) {
    throw_input_error("--kernels chooses the CUDA backend's kernels: it needs --device cuda");
  }
  if (!backend_available(device))
    throw_input_error("bench attention: --device ", name_of(device), " is not available in this build");
  const int64_t threads = cpu_threads_for(cl.get_int("threads", 0, 0, 4096));
  use_cpu_threads(static_cast<int>(threads));
  const LlamaConfig config = bench_config(shape, bench_fixtures_dir());
  const AttentionShape calls[] = {
      {"encoder", batch, text_len + num_tokens, 0, config.num_attention_heads, config.num_key_value_heads,
       config.head_dim},
      {"decoder", batch, text_len + 1, num_tokens, config.num_attention_heads, config.num_key_value_heads,
       config.head_dim}};
  std::printf("bench attention: %s (%ld/%ld heads, head_dim %ld), batch %ld, %s; median of %ld runs after %ld\n",
              shape.name.c_str(), static_cast<long>(config.num_attention_heads),
              static_cast<long>(config.num_key_value_heads), static_cast<long>(config.head_dim),
              static_cast<long>(batch), name_of(device), static_cast<long>(repeats), static_cast<long>(warmup));
  std::printf("%-8s %-16s %5s %6s %10s %11s %9s %9s  %s\n", "call", "kernels", "T", "prefix", "fwd ms", "bwd ms",
              "fwd TF/s", "bwd TF/s", "max difference from the first kernels' (out dq dk dv)");
  for (const AttentionShape& s : calls) {
    const HostInputs in = inputs_for(s);
    const double flops = attention_forward_flops(config, s.batch, s.t, s.prefix);
    Results first;
    for (size_t i = 0; i < kernels.size(); ++i) {
      std::unique_ptr<Ops> ops = backend_with(kernels[i]);
      Results r = measure(*ops, s, in, warmup, repeats);
      std::string differences = "(reference)";
      if (i > 0) {
        char text[96];
        std::snprintf(text, sizeof text, "%.2g %.2g %.2g %.2g", relative_max_difference(r.out, first.out),
                      relative_max_difference(r.dq, first.dq), relative_max_difference(r.dk, first.dk),
                      relative_max_difference(r.dv, first.dv));
        differences = text;
      }
      print_row(s, flops, kernels[i], r.forward_ms, r.backward_ms, differences);
      if (i == 0) first = std::move(r);
    }
  }
  if (cl.has("reference")) {
    const std::string script = cl.get("reference-script", "tools/bench/torch_attention_reference.py");
    std::ostringstream cmd;
    cmd << shell_quote(cl.get("python", env_or("XCOMP_PYTHON", "/tmp/refvenv/bin/python"))) << " "
        << shell_quote(script) << " --device " << name_of(device) << " --batch " << batch << " --heads "
        << config.num_attention_heads << " --kv-heads " << config.num_key_value_heads << " --head-dim "
        << config.head_dim << " --text-len " << text_len << " --num-tokens " << num_tokens << " --repeats " << repeats
        << " --warmup " << warmup << " --threads " << threads;
    const nlohmann::json j = run_reference_script(cmd.str(), script);
    if (!j.contains("calls") || !j["calls"].is_array() || j["calls"].size() != 2)
      throw_input_error("--reference: ", script, " printed no two calls: ", j.dump());
    const std::string label = "torch " + j.value("torch", std::string("?")) + ", " +
                              j.value("dtype", std::string("?")) +
                              (j.value("sdpa", false) ? ", scaled_dot_product_attention" : ", written out (no sdpa)");
    for (size_t c = 0; c < 2; ++c) {
      const nlohmann::json& call = j["calls"][c];
      const double forward_ms = call.value("forward_ms", 0.0), backward_ms = call.value("backward_ms", 0.0);
      print_row(calls[c], attention_forward_flops(config, calls[c].batch, calls[c].t, calls[c].prefix), "pytorch",
                forward_ms, backward_ms, label);
    }
  }
  return 0;
}

}  // namespace xcomp
