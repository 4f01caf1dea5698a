// xcomp train --config X.yaml [key.sub=value ...]
#include <iostream>

#include "io/config.h"
#include "trainer/command_line.h"
#include "trainer/commands.h"
#include "trainer/training_run.h"

namespace xcomp {

int run_train_command(const std::vector<std::string>& args) {
  CommandLine cl("train", "--config FILE.yaml [key.sub=value ...]",
                 {{"config", "FILE", "the experiment's YAML file (configs/*.yaml)"},
                  {"print-config", "", "check the configuration, print it resolved (every key) and exit"}});
  if (!cl.parse(args)) return 0;
  const ExperimentConfig config = load_experiment_config(cl.require("config"), cl.positional());
  if (cl.has("print-config")) {
    std::cout << resolved_config_yaml(config);
    return 0;
  }
  run_training(config);
  return 0;
}

}  // namespace xcomp
