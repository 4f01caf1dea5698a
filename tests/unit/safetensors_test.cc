// safetensors: a round trip for every dtype, and malformed files that must each give an
// InputError naming the file (and the tensor where there is one), never a crash.
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>

#include "model/half.h"
#include "model/input_error.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

// A safetensors file from raw parts: 8-byte little-endian header length, header, data.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string out;
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(n >> (8 * i)));
  return out + header + data;
}

std::string write_temp(const std::string& name, const std::string& bytes) {
  std::string path = test::temp_dir("safetensors") + "/" + name;
  test::write_file(path, bytes);
  return path;
}

// Expects open() to fail with a message containing the file name and every extra part.
void expect_open_error(const std::string& path, const std::vector<std::string>& parts) {
  try {
    SafetensorsFile::open(path);
    FAIL() << "expected InputError for " << path;
  } catch (const InputError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    for (const std::string& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
  }
}

TEST(Safetensors, RoundTripsEveryDtypeAndMetadata) {
  Tensor f32 = Tensor::empty({2, 3}, DType::F32);
  for (int i = 0; i < 6; ++i) f32.data<float>()[i] = 0.5f * i - 1.0f;
  Tensor f16 = Tensor::empty({3}, DType::F16);
  Tensor bf16 = Tensor::empty({1, 3}, DType::BF16);
  for (int i = 0; i < 3; ++i) {
    f16.data<uint16_t>()[i] = f32_to_f16(1.5f * i);
    bf16.data<uint16_t>()[i] = f32_to_bf16(-2.25f * i);
  }
  Tensor i32 = Tensor::empty({5}, DType::I32);
  for (int i = 0; i < 5; ++i) i32.data<int32_t>()[i] = i * 1000 - 7;
  Tensor empty = Tensor::empty({0, 4}, DType::F32);

  std::string path = test::temp_dir("safetensors") + "/rt.safetensors";
  write_safetensors(path, {{"b.f32", f32}, {"a.f16", f16}, {"bf16", bf16}, {"ints", i32}, {"none", empty}},
                    {{"format", "pt"}, {"note", "hello"}});

  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"b.f32", "a.f16", "bf16", "ints", "none"}));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "hello");
  for (const auto& [name, t] : std::vector<std::pair<std::string, Tensor>>{
           {"b.f32", f32}, {"a.f16", f16}, {"bf16", bf16}, {"ints", i32}, {"none", empty}}) {
    Tensor back = f.tensor(name);
    EXPECT_EQ(back.dtype(), t.dtype()) << name;
    EXPECT_EQ(back.shape(), t.shape()) << name;
    EXPECT_EQ(f.shape(name), t.shape()) << name;
    ASSERT_EQ(back.nbytes(), t.nbytes()) << name;
    if (t.nbytes() > 0) {
      EXPECT_EQ(std::memcmp(back.raw(), t.raw(), t.nbytes()), 0) << name;
    }
  }
  // The header is padded so the data starts 8-byte aligned and F32 tensors are views.
  std::string bytes = test::read_file(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ((8 + header_len) % 8, 0u);
}

TEST(Safetensors, MisalignedTensorIsCopiedNotViewed) {
  // A 2-byte F16 tensor first puts the F32 tensor at an odd multiple of 2.
  std::string header = R"({"h":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},)"
                       R"("f":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  float value = 3.5f;
  std::string data(2, '\0');
  data.append(reinterpret_cast<const char*>(&value), 4);
  std::string path = write_temp("misaligned.safetensors", safetensors_bytes(header, data));
  Tensor t = SafetensorsFile::open(path).tensor("f");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 4, 0u);
  EXPECT_EQ(t.data<float>()[0], 3.5f);
}

TEST(Safetensors, UnknownTensorNameIsAnError) {
  std::string path = test::temp_dir("safetensors") + "/one.safetensors";
  write_safetensors(path, {{"x", Tensor::zeros({2})}});
  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_FALSE(f.contains("y"));
  EXPECT_THROW(f.tensor("y"), InputError);
}

TEST(Safetensors, WriterLeavesNoTemporaryFile) {
  std::string path = test::temp_dir("safetensors") + "/w.safetensors";
  write_safetensors(path, {{"x", Tensor::zeros({4})}});
  EXPECT_THROW(test::read_file(path + ".tmp"), std::runtime_error);
}

const char* kGoodTensor = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

TEST(SafetensorsMalformed, HeaderLengthPastEndOfFile) {
  std::string bytes = safetensors_bytes("{}", "");
  bytes[0] = static_cast<char>(200);  // claims 200 header bytes in a 10-byte file
  expect_open_error(write_temp("len.safetensors", bytes), {"header length"});
}

TEST(SafetensorsMalformed, ShorterThanTheLengthField) {
  expect_open_error(write_temp("short.safetensors", "abc"), {"too short"});
}

TEST(SafetensorsMalformed, TruncatedData) {
  std::string bytes = safetensors_bytes(std::string("{") + kGoodTensor + "}", std::string(8, '\0'));
  bytes.resize(bytes.size() - 3);
  expect_open_error(write_temp("trunc.safetensors", bytes), {"tensor t"});
}

TEST(SafetensorsMalformed, MalformedJson) {
  expect_open_error(write_temp("json.safetensors", safetensors_bytes("{\"t\": [1, 2", "")), {"JSON"});
}

TEST(SafetensorsMalformed, HeaderNotAnObject) {
  expect_open_error(write_temp("array.safetensors", safetensors_bytes("[1, 2]", "")), {"object"});
}

TEST(SafetensorsMalformed, UnknownDtype) {
  std::string header = R"({"weird":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})";
  expect_open_error(write_temp("dtype.safetensors", safetensors_bytes(header, std::string(2, '\0'))),
                    {"unsupported dtype F8_E4M3 for tensor weird"});
}

TEST(SafetensorsMalformed, NegativeShape) {
  std::string header = R"({"neg":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})";
  expect_open_error(write_temp("neg.safetensors", safetensors_bytes(header, std::string(8, '\0'))),
                    {"tensor neg", "shape"});
}

TEST(SafetensorsMalformed, NonIntegerShape) {
  std::string header = R"({"frac":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})";
  expect_open_error(write_temp("frac.safetensors", safetensors_bytes(header, std::string(8, '\0'))),
                    {"tensor frac", "shape"});
}

TEST(SafetensorsMalformed, HugeShapeDoesNotOverflow) {
  std::string header = R"({"big":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})";
  expect_open_error(write_temp("big.safetensors", safetensors_bytes(header, std::string(8, '\0'))), {"tensor big"});
}

TEST(SafetensorsMalformed, OffsetsDisagreeWithShape) {
  std::string header = R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})";
  expect_open_error(write_temp("span.safetensors", safetensors_bytes(header, std::string(12, '\0'))),
                    {"tensor t", "needs 12"});
}

TEST(SafetensorsMalformed, OverlappingRanges) {
  std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  expect_open_error(write_temp("overlap.safetensors", safetensors_bytes(header, std::string(12, '\0'))),
                    {"overlaps"});
}

TEST(SafetensorsMalformed, RangePastTheEnd) {
  std::string header = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})";
  expect_open_error(write_temp("past.safetensors", safetensors_bytes(header, std::string(8, '\0'))), {"tensor t"});
}

TEST(SafetensorsMalformed, ReversedRange) {
  std::string header = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})";
  expect_open_error(write_temp("rev.safetensors", safetensors_bytes(header, std::string(8, '\0'))), {"tensor t"});
}

TEST(SafetensorsMalformed, GapBetweenTensors) {
  std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  expect_open_error(write_temp("gap.safetensors", safetensors_bytes(header, std::string(12, '\0'))),
                    {"not covered", "tensor b"});
}

TEST(SafetensorsMalformed, TrailingUncoveredBytes) {
  std::string header = std::string("{") + kGoodTensor + "}";
  expect_open_error(write_temp("tail.safetensors", safetensors_bytes(header, std::string(12, '\0'))),
                    {"not covered"});
}

TEST(SafetensorsMalformed, MissingField) {
  std::string header = R"({"t":{"dtype":"F32","shape":[2]}})";
  expect_open_error(write_temp("field.safetensors", safetensors_bytes(header, std::string(8, '\0'))),
                    {"tensor t", "data_offsets"});
}

TEST(SafetensorsMalformed, MetadataNotStrings) {
  std::string header = std::string(R"({"__metadata__":{"n":3},)") + kGoodTensor + "}";
  expect_open_error(write_temp("meta.safetensors", safetensors_bytes(header, std::string(8, '\0'))),
                    {"__metadata__"});
}

TEST(SafetensorsMalformed, MissingFileNamesIt) {
  expect_open_error(test::temp_dir("safetensors") + "/absent.safetensors", {});
}

}  // namespace
}  // namespace xcomp
