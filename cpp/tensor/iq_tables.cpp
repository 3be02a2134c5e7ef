// Definitions of the I-quant codebooks declared in iq_tables.h (the data is generated).
#include "tensor/iq_tables.h"

namespace wren {

#include "tensor/iq_tables.inc"

}  // namespace wren
