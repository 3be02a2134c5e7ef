// The model families wrenlm knows (models/registry.cpp lists their records).
#pragma once

#include <string>
#include <vector>

#include "models/family.h"

namespace wren {

// Every family, in a fixed order.
const std::vector<const ModelFamily*>& model_families();

// The family that loads files of general.architecture `arch`, or nullptr.
const ModelFamily* family_for_gguf_arch(const std::string& arch);

}  // namespace wren
