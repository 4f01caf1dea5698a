// The batched-product attention's row kernels (model/cuda/score_rows.h): the masked
// softmax and its backward, in registers and looped, run by the CPU emulation of their
// warps (tests/emulated_thread_block.h: one std::thread a lane, shuffles through a warp
// barrier) over score matrices with a prefix, padded keys, a query that sees no key,
// query blocks, rows longer than 1024 keys and rows padded to the score stride. Each
// form must give, to the bit, a plain loop of the same arithmetic (the kernels promise
// the same results whichever form runs), touch no entry past its block's keys, and be a
// softmax (its gradient) to within fp32 rounding of double precision; written into bf16
// rows (the bf16 products' path), the same values rounded once. What this cannot
// see: the GPU's speed and its memory faults; the cuda tests run these kernels inside
// the attention op there.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "model/cuda/score_rows.h"
#include "model/half.h"
#include "tests/emulated_score_rows.h"

namespace xcomp {
namespace {

using score_rows::GemmAttentionShape;

constexpr float kUntouched = 12345.f;  // what every entry past a row's block keys must keep

struct RowsCase {
  std::string name;
  int64_t batch, t, heads, prefix, query_block, spare_capacity;
  std::vector<std::pair<int64_t, int64_t>> invalid;  // (batch row, key) pairs key_valid clears
};

void PrintTo(const RowsCase& c, std::ostream* os) { *os << c.name; }

GemmAttentionShape shape_of(const RowsCase& c) {
  GemmAttentionShape s{};
  s.batch = c.batch, s.t = c.t, s.heads = c.heads, s.kv_heads = 1, s.d = 8;
  s.length = c.prefix + c.t;
  s.capacity = s.length + c.spare_capacity;
  s.group = c.heads;
  s.query_block = std::min(c.query_block, c.t);
  s.score_stride = score_rows::score_row_stride(s.length);
  return s;
}

std::vector<int32_t> key_valid_of(const RowsCase& c, const GemmAttentionShape& s) {
  std::vector<int32_t> valid(s.batch * s.capacity, 1);
  for (const auto& [b, key] : c.invalid) valid[b * s.capacity + key] = 0;
  return valid;
}

// Scores in [-4, 4) up to each row's block keys, kUntouched past them.
std::vector<float> random_rows(const GemmAttentionShape& s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-4.f, 4.f);
  std::vector<float> rows(score_rows::score_rows_of(s) * s.score_stride, kUntouched);
  for (int64_t r = 0; r < score_rows::score_rows_of(s); ++r)
    for (int64_t j = 0; j < score_rows::block_keys(s, r % s.t); ++j) rows[r * s.score_stride + j] = uniform(rng);
  return rows;
}

// Lane l's partial values combined as shuffle_xor's butterfly combines them.
template <class Combine> float butterfly(std::array<float, 32> lanes, Combine combine) {
  for (int offset = 16; offset > 0; offset /= 2) {
    std::array<float, 32> next;
    for (int l = 0; l < 32; ++l) next[l] = combine(lanes[l], lanes[l ^ offset]);
    lanes = next;
  }
  return lanes[0];
}

// The kernels' arithmetic as a plain loop: lane l's entries l, l + 32, ... in order.
void reference_softmax(const GemmAttentionShape& s, const int32_t* key_valid, float* scores) {
  for (int64_t r = 0; r < score_rows::score_rows_of(s); ++r) {
    const int64_t t = r % s.t, b = r / (s.t * s.heads);
    const int64_t n = score_rows::visible_keys(s, t), columns = score_rows::block_keys(s, t);
    const int32_t* valid = key_valid + b * s.capacity;
    float* x = scores + r * s.score_stride;
    std::array<float, 32> partial;
    partial.fill(-INFINITY);
    for (int64_t j = 0; j < n; ++j)
      if (valid[j]) partial[j % 32] = std::fmax(partial[j % 32], x[j]);
    const float max_score = butterfly(partial, [](float a, float b) { return std::fmax(a, b); });
    if (max_score == -INFINITY) {
      for (int64_t j = 0; j < columns; ++j) x[j] = 0.f;
      continue;
    }
    partial.fill(0.f);
    for (int64_t j = 0; j < columns; ++j) {
      x[j] = j < n && valid[j] ? std::exp(x[j] - max_score) : 0.f;
      partial[j % 32] += x[j];
    }
    const float inv = 1.0f / butterfly(partial, [](float a, float b) { return a + b; });
    for (int64_t j = 0; j < columns; ++j) x[j] *= inv;
  }
}

void reference_softmax_backward(const GemmAttentionShape& s, float scale, const float* p, float* g) {
  for (int64_t r = 0; r < score_rows::score_rows_of(s); ++r) {
    const int64_t columns = score_rows::block_keys(s, r % s.t), at = r * s.score_stride;
    std::array<float, 32> partial;
    partial.fill(0.f);
    for (int64_t j = 0; j < columns; ++j) partial[j % 32] += p[at + j] * g[at + j];
    const float dot = butterfly(partial, [](float a, float b) { return a + b; });
    for (int64_t j = 0; j < columns; ++j) g[at + j] = scale * p[at + j] * (g[at + j] - dot);
  }
}

// The ways a row can run: in registers with the fewest registers that hold it and with
// twice that, and looped.
struct Form {
  std::string name;
  int per_lane;  // 0: looped
};

std::vector<Form> forms_for(int64_t length) {
  std::vector<Form> forms{{"looped", 0}};
  const int fewest = score_rows::row_registers(length);
  if (fewest != 0) forms.push_back({"registers_" + std::to_string(fewest), fewest});
  if (fewest != 0 && fewest < 32) forms.push_back({"registers_" + std::to_string(2 * fewest), 2 * fewest});
  return forms;
}

template <class F> void with_per_lane(int per_lane, F&& f) {
  switch (per_lane) {
    case 4: return f(std::integral_constant<int, 4>{});
    case 8: return f(std::integral_constant<int, 8>{});
    case 16: return f(std::integral_constant<int, 16>{});
    case 32: return f(std::integral_constant<int, 32>{});
    default: FAIL() << "no register form with " << per_lane << " a lane";
  }
}

// The softmax of `scores` into `probabilities` (the same rows where P is float).
template <class P>
void emulated_softmax(const Form& form, const GemmAttentionShape& s, const int32_t* valid, const float* scores,
                      P* probabilities) {
  if (form.per_lane == 0) {
    test::emulate_score_rows(s, [&](const auto& ex, int64_t row) {
      score_rows::masked_softmax_row_looped(ex, s, valid, scores, probabilities, row);
    });
    return;
  }
  with_per_lane(form.per_lane, [&](auto per_lane) {
    test::emulate_score_rows(s, [&](const auto& ex, int64_t row) {
      score_rows::masked_softmax_row_in_registers<decltype(per_lane)::value>(ex, s, valid, scores, probabilities,
                                                                             row);
    });
  });
}

// dS from P and dP into `g` (dP's rows where dS is float).
template <class P, class G>
void emulated_softmax_backward(const Form& form, const GemmAttentionShape& s, float scale, const P* p,
                               const float* dp, G* g) {
  if (form.per_lane == 0) {
    test::emulate_score_rows(s, [&](const auto& ex, int64_t row) {
      score_rows::softmax_backward_row_looped(ex, s, scale, p, dp, g, row);
    });
    return;
  }
  with_per_lane(form.per_lane, [&](auto per_lane) {
    test::emulate_score_rows(s, [&](const auto& ex, int64_t row) {
      score_rows::softmax_backward_row_in_registers<decltype(per_lane)::value>(ex, s, scale, p, dp, g, row);
    });
  });
}

using Bf16Rows = std::vector<score_rows::Bf16Bits>;

// bf16 rows filled with kUntouched, rounded.
Bf16Rows untouched_bf16_rows(const GemmAttentionShape& s) {
  return Bf16Rows(score_rows::score_rows_of(s) * s.score_stride, score_rows::Bf16Bits{f32_to_bf16(kUntouched)});
}

// The shape of the bf16 rows: zeros from each row's block keys to `length` rounded up to
// 8 (as the bf16 products pad their keys; the score stride is a multiple of 16).
GemmAttentionShape bf16_rows_shape(const RowsCase& c) {
  GemmAttentionShape s = shape_of(c);
  s.zeros_to = (s.length + 7) / 8 * 8;
  return s;
}

// `want` with the zeros zeros_to asks for.
void zero_past_blocks(const GemmAttentionShape& s, std::vector<float>& want) {
  for (int64_t r = 0; r < score_rows::score_rows_of(s); ++r)
    for (int64_t j = score_rows::block_keys(s, r % s.t); j < s.zeros_to; ++j) want[r * s.score_stride + j] = 0.f;
}

// Entries of `got` whose bits differ from `want`'s rounded to bf16 (model/half.h), with
// the first one named.
std::string bf16_differences(const Bf16Rows& got, const std::vector<float>& want) {
  int64_t count = 0, first = -1;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i].bits != f32_to_bf16(want[i]) && count++ == 0) first = static_cast<int64_t>(i);
  if (count == 0) return "";
  return std::to_string(count) + " entries, first " + std::to_string(first) + ": " +
         std::to_string(bf16_to_f32(got[first].bits)) + " against " + std::to_string(want[first]);
}

// Entries that differ in their bits, with the first one named.
std::string bitwise_differences(const std::vector<float>& got, const std::vector<float>& want) {
  int64_t count = 0, first = -1;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0 && count++ == 0) first = static_cast<int64_t>(i);
  if (count == 0) return "";
  return std::to_string(count) + " entries, first " + std::to_string(first) + ": " + std::to_string(got[first]) +
         " against " + std::to_string(want[first]);
}

class ScoreRowsTest : public ::testing::TestWithParam<RowsCase> {};

TEST_P(ScoreRowsTest, SoftmaxFormsGiveTheSameBitsAndASoftmax) {
  const RowsCase& c = GetParam();
  const GemmAttentionShape s = shape_of(c);
  const std::vector<int32_t> valid = key_valid_of(c, s);
  const std::vector<float> scores = random_rows(s, 7);
  std::vector<float> want = scores;
  reference_softmax(s, valid.data(), want.data());

  // The reference is a masked softmax: against double precision, a row at a time.
  for (int64_t r = 0; r < score_rows::score_rows_of(s); ++r) {
    const int64_t t = r % s.t, b = r / (s.t * s.heads), n = score_rows::visible_keys(s, t);
    double max_score = -INFINITY, sum = 0;
    for (int64_t j = 0; j < n; ++j)
      if (valid[b * s.capacity + j]) max_score = std::max(max_score, double{scores[r * s.score_stride + j]});
    for (int64_t j = 0; j < n; ++j)
      if (valid[b * s.capacity + j]) sum += std::exp(scores[r * s.score_stride + j] - max_score);
    for (int64_t j = 0; j < score_rows::block_keys(s, t); ++j) {
      const bool seen = j < n && valid[b * s.capacity + j] && sum > 0;
      const double p = seen ? std::exp(scores[r * s.score_stride + j] - max_score) / sum : 0.0;
      ASSERT_NEAR(want[r * s.score_stride + j], p, 1e-6) << "row " << r << " key " << j;
    }
  }

  for (const Form& form : forms_for(s.length)) {
    std::vector<float> got = scores;
    emulated_softmax(form, s, valid.data(), got.data(), got.data());
    EXPECT_EQ(bitwise_differences(got, want), "") << form.name;  // kUntouched past the block keys included
  }
}

// The bf16 products' path (gemm_causal_bf16): P into bf16 rows of its own is the float
// softmax rounded once, zeros from the block keys to zeros_to, nothing written past that,
// the scores left as they were.
TEST_P(ScoreRowsTest, SoftmaxIntoBf16RowsIsTheFloatSoftmaxRounded) {
  const RowsCase& c = GetParam();
  const GemmAttentionShape s = bf16_rows_shape(c);
  const std::vector<int32_t> valid = key_valid_of(c, s);
  const std::vector<float> scores = random_rows(s, 7);
  std::vector<float> want = scores;
  reference_softmax(s, valid.data(), want.data());
  zero_past_blocks(s, want);
  for (const Form& form : forms_for(s.length)) {
    Bf16Rows got = untouched_bf16_rows(s);
    std::vector<float> read = scores;
    emulated_softmax(form, s, valid.data(), read.data(), got.data());
    EXPECT_EQ(bf16_differences(got, want), "") << form.name;
    EXPECT_EQ(bitwise_differences(read, scores), "") << form.name;
  }
}

TEST_P(ScoreRowsTest, SoftmaxBackwardFormsGiveTheSameBitsAndTheGradient) {
  const RowsCase& c = GetParam();
  const GemmAttentionShape s = shape_of(c);
  const std::vector<int32_t> valid = key_valid_of(c, s);
  std::vector<float> p = random_rows(s, 11);
  reference_softmax(s, valid.data(), p.data());
  const std::vector<float> dp = random_rows(s, 13);
  const float scale = 0.125f;
  std::vector<float> want = dp;
  reference_softmax_backward(s, scale, p.data(), want.data());

  // dS_j = scale * P_j (dP_j - sum_k P_k dP_k), in double precision.
  for (int64_t r = 0; r < score_rows::score_rows_of(s); ++r) {
    const int64_t at = r * s.score_stride, columns = score_rows::block_keys(s, r % s.t);
    double dot = 0;
    for (int64_t j = 0; j < columns; ++j) dot += double{p[at + j]} * dp[at + j];
    for (int64_t j = 0; j < columns; ++j)
      ASSERT_NEAR(want[at + j], scale * double{p[at + j]} * (dp[at + j] - dot), 1e-6) << "row " << r << " key " << j;
  }

  for (const Form& form : forms_for(s.length)) {
    std::vector<float> got = dp;
    emulated_softmax_backward(form, s, scale, p.data(), got.data(), got.data());
    EXPECT_EQ(bitwise_differences(got, want), "") << form.name;
  }
}

// The bf16 path's backward: P read from bf16 rows, dS written into bf16 rows of its own,
// is the float backward of the rounded P, itself rounded once, with zeros from the block
// keys to zeros_to; dP is left as it was.
TEST_P(ScoreRowsTest, SoftmaxBackwardBetweenBf16RowsIsTheFloatOneRounded) {
  const RowsCase& c = GetParam();
  const GemmAttentionShape s = bf16_rows_shape(c);
  const std::vector<int32_t> valid = key_valid_of(c, s);
  std::vector<float> p = random_rows(s, 11);
  reference_softmax(s, valid.data(), p.data());
  Bf16Rows p16(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    p16[i].bits = f32_to_bf16(p[i]);
    p[i] = bf16_to_f32(p16[i].bits);  // the reference reads what the kernel reads
  }
  const std::vector<float> dp = random_rows(s, 13);
  const float scale = 0.125f;
  std::vector<float> want = dp;
  reference_softmax_backward(s, scale, p.data(), want.data());
  zero_past_blocks(s, want);
  for (const Form& form : forms_for(s.length)) {
    Bf16Rows got = untouched_bf16_rows(s);
    std::vector<float> read = dp;
    emulated_softmax_backward(form, s, scale, p16.data(), read.data(), got.data());
    EXPECT_EQ(bf16_differences(got, want), "") << form.name;
    EXPECT_EQ(bitwise_differences(read, dp), "") << form.name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ScoreRowsTest,
    ::testing::Values(
        // 128-query blocks at a smaller scale: 21 queries in blocks of 8, a padded key.
        RowsCase{"query_blocks", 2, 21, 2, 0, 8, 0, {{1, 5}}},
        // The decoder's way: a prefix of 5 entries, one block, spare capacity, padding.
        RowsCase{"prefix", 2, 17, 2, 5, 1 << 20, 3, {{0, 0}, {1, 2}, {1, 20}}},
        // Query 0 sees only key 0, which is padding: its row is all zeros.
        RowsCase{"unseen_row", 1, 4, 2, 0, 1 << 20, 0, {{0, 0}}},
        // 300 keys (16 registers a lane), rows padded to 304.
        RowsCase{"long_rows", 1, 3, 2, 297, 2, 0, {{0, 100}}},
        // 1100 keys: past the register forms, looped only.
        RowsCase{"longer_than_registers", 1, 2, 1, 1098, 1 << 20, 0, {{0, 1099}}}),
    [](const ::testing::TestParamInfo<RowsCase>& info) { return info.param.name; });

TEST(ScoreRows, RowRegistersAreTheFewestThatHoldTheRow) {
  EXPECT_EQ(score_rows::row_registers(1), 4);
  EXPECT_EQ(score_rows::row_registers(128), 4);
  EXPECT_EQ(score_rows::row_registers(129), 8);
  EXPECT_EQ(score_rows::row_registers(497), 16);  // LLaMA-3-8B's decoder: 481 tokens after 16
  EXPECT_EQ(score_rows::row_registers(1024), 32);
  EXPECT_EQ(score_rows::row_registers(1025), 0);
}

TEST(ScoreRows, Bf16RoundingIsModelHalfs) {
  const std::vector<float> values{0.f,       -0.f,          1.f,      1.00390625f, 1.01171875f, 3.14159f,
                                  -2.71828f, 1e-40f,        3.4e38f,  INFINITY,    -INFINITY,   NAN,
                                  0.0078125f, 1.0f / 3.0f, 65504.f, -1e-3f};
  for (float x : values) {
    EXPECT_EQ(score_rows::to_bf16(x).bits, f32_to_bf16(x)) << x;
    const score_rows::Bf16Bits rounded = score_rows::to_bf16(x);
    if (!std::isnan(x)) {
      EXPECT_EQ(score_rows::load_entry(&rounded), bf16_to_f32(f32_to_bf16(x))) << x;
    }
  }
}

TEST(ScoreRows, RowsStartAtMultiplesOf16Floats) {
  EXPECT_EQ(score_rows::score_row_stride(496), 496);
  EXPECT_EQ(score_rows::score_row_stride(497), 512);
  EXPECT_EQ(score_rows::score_row_stride(1), 16);
}

}  // namespace
}  // namespace xcomp
