#include "util/blas.h"

#ifdef WRENLM_SCIPY_OPENBLAS
extern "C" {
void scipy_openblas_set_num_threads(int);
char* scipy_openblas_get_corename(void);
}
#else
extern "C" {
void openblas_set_num_threads(int) __attribute__((weak));
char* openblas_get_corename(void) __attribute__((weak));
}
#endif

namespace wren::blas {

void set_num_threads(int n) {
#ifdef WRENLM_SCIPY_OPENBLAS
  scipy_openblas_set_num_threads(n);
#else
  if (openblas_set_num_threads) openblas_set_num_threads(n);
#endif
}

std::string core_name() {
#ifdef WRENLM_SCIPY_OPENBLAS
  return scipy_openblas_get_corename();
#else
  return openblas_get_corename ? openblas_get_corename() : "unknown (not OpenBLAS)";
#endif
}

}  // namespace wren::blas
