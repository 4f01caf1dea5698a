#include "io/sha256.h"

#include <glog/logging.h>
#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "model/input_error.h"

namespace xcomp {

namespace {
struct DigestContext {
  DigestContext() : ctx(EVP_MD_CTX_new()) {
    CHECK(ctx != nullptr) << "EVP_MD_CTX_new failed";
    CHECK_EQ(EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr), 1) << "EVP_DigestInit_ex failed";
  }
  ~DigestContext() { EVP_MD_CTX_free(ctx); }
  void update(const void* data, size_t size) { CHECK_EQ(EVP_DigestUpdate(ctx, data, size), 1) << "EVP_DigestUpdate failed"; }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    CHECK_EQ(EVP_DigestFinal_ex(ctx, digest, &length), 1) << "EVP_DigestFinal_ex failed";
    static const char* kHex = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < length; ++i) {
      out += kHex[digest[i] >> 4];
      out += kHex[digest[i] & 15];
    }
    return out;
  }
  EVP_MD_CTX* ctx;
};
}  // namespace

std::string sha256_hex(const void* data, size_t size) {
  DigestContext d;
  d.update(data, size);
  return d.hex();
}

std::string sha256_file_hex(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) throw_input_error(path, ": cannot open: ", std::strerror(errno));
  DigestContext d;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) d.update(buf, n);
  if (std::ferror(f.get())) throw_input_error(path, ": read error");
  return d.hex();
}

}  // namespace xcomp
