// The few CBLAS entry points we use, under one name whichever OpenBLAS build provides them
// (the scipy-openblas32 wheel prefixes its symbols with scipy_).
#pragma once

#include <cblas.h>

#include <string>

namespace wren::blas {

inline void sgemm_nt(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c, int ldc) {
  // C (m x n) = A (m x k) * B^T, with B stored (n x k) row-major.
#ifdef WRENLM_SCIPY_OPENBLAS
  scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
#else
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
#endif
}

// C (m x n) = alpha * A (m x k) * op(B) + beta * C, all row-major; op(B) = B^T with B stored
// (n x k) when trans_b, else B stored (k x n).
inline void sgemm(bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb,
                  float beta, float* c, int ldc) {
  const CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
#ifdef WRENLM_SCIPY_OPENBLAS
  scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#else
  cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

void set_num_threads(int n);  // defined in util/blas.cpp (OpenBLAS-specific, optional elsewhere)
std::string core_name();

}  // namespace wren::blas
