// SHA-256 digests (OpenSSL), as lowercase hex: the identity of tokenizers recorded in
// data shards, and of checkpoint files.
#pragma once

#include <cstddef>
#include <string>

namespace xcomp {

std::string sha256_hex(const void* data, size_t size);
inline std::string sha256_hex(const std::string& bytes) { return sha256_hex(bytes.data(), bytes.size()); }
// Streams the file; InputError naming it when it cannot be read.
std::string sha256_file_hex(const std::string& path);

}  // namespace xcomp
