// y (M, N) = x (M, K) @ w, for a few rows M (a decode step's batch), as an XLA:CPU FFI call.
//
// w is packed: (ceil(N / 48), K, 48), each block of 48 output columns one contiguous
// K x 48 panel, zero past N (cpu_matmul.pack). A panel is read once, as one forward stream
// (prefetched 16 panel rows ahead), for 8 rows at a time: 8 x 3 zmm accumulators stay in
// registers while x[m, k] is broadcast. On the machine this was written on, XLA's dot ran a
// decode step's (8, K) @ (K, N) products at about 12 GB/s and this kernel at about twice
// that, near a bare read of the weights (bench/small_matmul.py).
//
// The summation runs over k in order, one fused multiply-add per term.
// Panels are shared between the calling thread and XLA's intra-op pool; the caller never
// waits for a task that has not started, so a busy pool only costs parallelism.
#ifndef __AVX512F__
#error "small_matmul needs AVX-512 (x86-64); the sampler falls back to XLA's dot"
#endif

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int kVectors = 3;               // zmm per block row
constexpr int64_t kBlock = 16 * kVectors; // output columns per packed block
constexpr int kRows = 8;                  // rows of x per pass
constexpr int kPrefetch = 16;             // panel rows ahead

template <int MR>
inline void panel(const float* __restrict x, int64_t K, const float* __restrict w,
                  float* __restrict y, int64_t N, int64_t n0) {
  __m512 acc[MR][kVectors];
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < kVectors; ++j) acc[m][j] = _mm512_setzero_ps();
  const float* row = w;
  for (int64_t k = 0; k < K; ++k, row += kBlock) {
    const char* ahead = reinterpret_cast<const char*>(row + kPrefetch * kBlock);
    for (int j = 0; j < kVectors; ++j) _mm_prefetch(ahead + 64 * j, _MM_HINT_T0);
    __m512 wv[kVectors];
    for (int j = 0; j < kVectors; ++j) wv[j] = _mm512_loadu_ps(row + 16 * j);
    for (int m = 0; m < MR; ++m) {
      const __m512 xv = _mm512_set1_ps(x[m * K + k]);
      for (int j = 0; j < kVectors; ++j) acc[m][j] = _mm512_fmadd_ps(xv, wv[j], acc[m][j]);
    }
  }
  const int64_t valid = std::min(kBlock, N - n0);
  for (int m = 0; m < MR; ++m) {
    float* out = y + m * N + n0;
    for (int j = 0; j < kVectors; ++j) {
      const int64_t left = valid - 16 * j;
      if (left >= 16) {
        _mm512_storeu_ps(out + 16 * j, acc[m][j]);
      } else if (left > 0) {
        _mm512_mask_storeu_ps(out + 16 * j, static_cast<__mmask16>((1u << left) - 1),
                              acc[m][j]);
      }
    }
  }
}

template <int MR>
void panels(const float* x, int64_t K, const float* w, float* y, int64_t N, int64_t b0,
            int64_t b1) {
  for (int64_t b = b0; b < b1; ++b) panel<MR>(x, K, w + b * K * kBlock, y, N, b * kBlock);
}

void run_blocks(const float* x, int64_t M, int64_t K, const float* w, float* y, int64_t N,
                int64_t b0, int64_t b1) {
  for (int64_t m0 = 0; m0 < M; m0 += kRows) {
    const float* xm = x + m0 * K;
    float* ym = y + m0 * N;
    switch (std::min<int64_t>(kRows, M - m0)) {
      case 8: panels<8>(xm, K, w, ym, N, b0, b1); break;
      case 7: panels<7>(xm, K, w, ym, N, b0, b1); break;
      case 6: panels<6>(xm, K, w, ym, N, b0, b1); break;
      case 5: panels<5>(xm, K, w, ym, N, b0, b1); break;
      case 4: panels<4>(xm, K, w, ym, N, b0, b1); break;
      case 3: panels<3>(xm, K, w, ym, N, b0, b1); break;
      case 2: panels<2>(xm, K, w, ym, N, b0, b1); break;
      default: panels<1>(xm, K, w, ym, N, b0, b1); break;
    }
  }
}

// Work units (runs of blocks) claimed by whichever thread gets there first.
struct Job {
  const float* x;
  const float* w;
  float* y;
  int64_t M, K, N, blocks, per_unit, units;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};

  void work() {
    for (int64_t u; (u = next.fetch_add(1, std::memory_order_relaxed)) < units;) {
      const int64_t b0 = u * per_unit, b1 = std::min(blocks, b0 + per_unit);
      run_blocks(x, M, K, w, y, N, b0, b1);
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

// Below this many bytes of w a second thread costs more to wake than it saves.
constexpr int64_t kParallelBytes = 256 << 10;

}  // namespace

static ffi::Error SmallMatmul(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                              ffi::Buffer<ffi::F32> w, ffi::ResultBuffer<ffi::F32> y) {
  const auto xd = x.dimensions(), wd = w.dimensions(), yd = y->dimensions();
  if (wd.size() != 3 || wd[2] != kBlock || xd.size() < 1 || yd.size() != xd.size()) {
    return ffi::Error::InvalidArgument("small_matmul: w must be packed (blocks, K, 48)");
  }
  const int64_t K = wd[1], N = yd[yd.size() - 1];
  if (xd[xd.size() - 1] != K || wd[0] * kBlock < N) {
    return ffi::Error::InvalidArgument("small_matmul: x, w and y shapes do not agree");
  }
  int64_t M = 1;
  for (size_t i = 0; i + 1 < xd.size(); ++i) M *= xd[i];
  if (M == 0 || N == 0) return ffi::Error::Success();
  auto job = std::make_shared<Job>();
  job->x = x.typed_data();
  job->w = w.typed_data();
  job->y = y->typed_data();
  job->M = M;
  job->K = K;
  job->N = N;
  job->blocks = (N + kBlock - 1) / kBlock;
  const int64_t threads =
      K * N * 4 >= kParallelBytes ? std::max<int64_t>(1, pool.num_threads()) : 1;
  const int64_t units = std::min<int64_t>(job->blocks, threads * 8);
  job->per_unit = (job->blocks + units - 1) / units;
  job->units = (job->blocks + job->per_unit - 1) / job->per_unit;
  for (int64_t i = 1; i < std::min(threads, job->units); ++i) {
    pool.Schedule([job] { job->work(); });
  }
  job->work();
  while (job->done.load(std::memory_order_acquire) < job->units) _mm_pause();
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeekerSmallMatmul, SmallMatmul,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
