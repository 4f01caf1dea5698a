// xcomp convert: llama2.c and GGUF models into Hugging Face directories, so one loader
// (and Python users' transformers) reads them all.
#include <glog/logging.h>

#include <iostream>

#include "io/gguf_convert.h"
#include "io/llama2c.h"
#include "model/input_error.h"
#include "trainer/command_line.h"
#include "trainer/commands.h"

namespace xcomp {

int run_convert_command(const std::vector<std::string>& args) {
  CommandLine cl("convert", "llama2c|gguf IN OUT_DIR [--tokenizer tok.model|tok.bin]",
                 {{"tokenizer", "PATH", "llama2c only: the tokenizer to copy into OUT_DIR"}});
  if (!cl.parse(args)) return 0;
  cl.expect_positional(3, 3);
  const std::string& kind = cl.positional()[0];
  const std::string& in = cl.positional()[1];
  const std::string& out = cl.positional()[2];
  if (kind == "llama2c") {
    convert_llama2c(in, out, cl.get("tokenizer"));
  } else if (kind == "gguf") {
    if (cl.has("tokenizer")) throw_input_error("xcomp convert gguf: --tokenizer is not used; the GGUF file carries its tokenizer");
    convert_gguf(in, out);
  } else {
    throw_input_error("xcomp convert: unknown source format '", kind, "' (expected llama2c or gguf)\n", cl.usage());
  }
  LOG(INFO) << "wrote " << out;
  return 0;
}

}  // namespace xcomp
