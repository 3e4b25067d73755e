// pconv-inspect model.h5 [--json out.json] [--png-dir DIR]: the pruning report of a model and the
// verification of every constraint from its weights (logic in src/admm/inspect.cpp).
#include <iostream>
#include <string>
#include <vector>

#include "admm/inspect.h"

int main(int argc, char** argv) {
  return pconv::admm::inspect_command(std::vector<std::string>(argv + 1, argv + argc), std::cout,
                                      std::cerr);
}
