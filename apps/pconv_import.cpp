// pconv-import IN.h5 --arch ARCH [--num-classes N] [--image-size S] [--width W]
//   [--strip-prefix P] --out OUT.h5: a PyTorch state_dict (saved with h5py, optionally with
// pattern masks) as a pconv model file (logic in src/pipeline/import_pytorch.cpp; docs/import.md).
#include <iostream>
#include <string>
#include <vector>

#include "pipeline/import_pytorch.h"
#include "pipeline/provenance.h"

int main(int argc, char** argv) {
  pconv::set_command_line(pconv::command_line(argc, argv));
  return pconv::import_command(std::vector<std::string>(argv + 1, argv + argc), std::cout,
                               std::cerr);
}
