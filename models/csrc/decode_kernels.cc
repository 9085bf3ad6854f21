// A decode step's kernels as XLA:CPU FFI calls (models/cpu_kernels.py).
//
// SeekerSmallMatmul: y (M, N) = x (M, K) @ w, for a few rows M (a decode step's batch).
//
// w is packed: (ceil(N / 48), K, 48), each block of 48 output columns one contiguous
// K x 48 panel, zero past N (cpu_kernels.pack). A panel is read once, as one forward stream
// (prefetched 16 panel rows ahead), for 8 rows at a time: 8 x 3 zmm accumulators stay in
// registers while x[m, k] is broadcast. On the machine this was written on, XLA's dot ran a
// decode step's (8, K) @ (K, N) products at about 12 GB/s and this kernel at about twice
// that, near a bare read of the weights (bench/small_matmul.py).
//
// The summation runs over k in order, one fused multiply-add per term.
// Panels are shared between the calling thread and XLA's intra-op pool; the caller never
// waits for a task that has not started, so a busy pool only costs parallelism.
#ifndef __AVX512F__
#error "the decode kernels need AVX-512 (x86-64); the sampler falls back to XLA"
#endif

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

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

// Below this many bytes read a second thread costs more to wake than it saves.
constexpr int64_t kParallelBytes = 256 << 10;

// Runs body(i0, i1) over [0, n) in runs claimed by whichever thread gets there first: the
// caller and up to threads - 1 pool tasks. The caller waits only for runs already claimed.
template <typename Body>
void parallel_for(ffi::ThreadPool& pool, int64_t n, int64_t threads, Body body) {
  struct Shared {
    Body body;
    int64_t n, per, runs;
    std::atomic<int64_t> next{0}, done{0};
    explicit Shared(Body b) : body(std::move(b)) {}
    void work() {
      for (int64_t r; (r = next.fetch_add(1, std::memory_order_relaxed)) < runs;) {
        body(r * per, std::min(n, (r + 1) * per));
        done.fetch_add(1, std::memory_order_release);
      }
    }
  };
  if (n <= 0) return;
  auto shared = std::make_shared<Shared>(std::move(body));
  const int64_t runs = std::min<int64_t>(n, threads * 8);
  shared->n = n;
  shared->per = (n + runs - 1) / runs;
  shared->runs = (n + shared->per - 1) / shared->per;
  for (int64_t i = 1; i < std::min(threads, shared->runs); ++i) {
    pool.Schedule([shared] { shared->work(); });
  }
  shared->work();
  while (shared->done.load(std::memory_order_acquire) < shared->runs) _mm_pause();
}

int64_t thread_count(ffi::ThreadPool& pool, int64_t bytes) {
  return bytes >= kParallelBytes ? std::max<int64_t>(1, pool.num_threads()) : 1;
}

// exp for AVX-512: Cephes' expf polynomial on x - n ln2, scaled by 2^n; inputs below -104
// give 0 (as a masked score's exp does), above 88.7 clamp. Within 2 ulp of expf.
inline __m512 exp512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(88.7f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// One (row b, kv head) of decode attention: G query heads against the first W cache slots.
// Scores q.k * D^-0.5 where mask, else float32's lowest (a row with nothing visible gets
// uniform weights, as models/qwen3_vl/attention.py's reference does); softmax; p @ v.
void attend(const float* q, const float* k, const float* v, const bool* mask, float* out,
            int64_t G, int64_t W, int64_t D, float* scores) {
  const float scale = static_cast<float>(std::pow(static_cast<double>(D), -0.5));
  const int64_t DV = D / 16;
  for (int64_t g = 0; g < G; ++g) {
    const float* qg = q + g * D;
    float* sg = scores + g * W;
    for (int64_t s = 0; s < W; ++s) {
      __m512 acc = _mm512_setzero_ps();
      for (int64_t j = 0; j < DV; ++j)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(qg + 16 * j), _mm512_loadu_ps(k + s * D + 16 * j), acc);
      sg[s] = mask[s] ? _mm512_reduce_add_ps(acc) * scale : -FLT_MAX;
    }
    float top = -FLT_MAX;
    for (int64_t s = 0; s < W; ++s) top = std::max(top, sg[s]);
    const __m512 topv = _mm512_set1_ps(top);
    __m512 total = _mm512_setzero_ps();
    int64_t s = 0;
    for (; s + 16 <= W; s += 16) {
      const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(sg + s), topv));
      _mm512_storeu_ps(sg + s, e);
      total = _mm512_add_ps(total, e);
    }
    if (s < W) {
      const __mmask16 m = static_cast<__mmask16>((1u << (W - s)) - 1);
      const __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, sg + s), topv));
      _mm512_mask_storeu_ps(sg + s, m, e);
      total = _mm512_add_ps(total, _mm512_maskz_mov_ps(m, e));
    }
    const float sum = _mm512_reduce_add_ps(total);
    for (int64_t t = 0; t < W; ++t) sg[t] = sg[t] / sum;
  }
  for (int64_t g = 0; g < G; ++g) {
    const float* pg = scores + g * W;
    for (int64_t j = 0; j < DV; ++j) {
      __m512 acc = _mm512_setzero_ps();
      for (int64_t s = 0; s < W; ++s)
        acc = _mm512_fmadd_ps(_mm512_set1_ps(pg[s]), _mm512_loadu_ps(v + s * D + 16 * j), acc);
      _mm512_storeu_ps(out + g * D + 16 * j, acc);
    }
  }
}

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
  const float* xp = x.typed_data();
  const float* wp = w.typed_data();
  float* yp = y->typed_data();
  parallel_for(pool, (N + kBlock - 1) / kBlock, thread_count(pool, K * N * 4),
               [=](int64_t b0, int64_t b1) { run_blocks(xp, M, K, wp, yp, N, b0, b1); });
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeekerSmallMatmul, SmallMatmul,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

// SeekerDecodeAttention: one query per row against a head-major KV cache.
// q (B, H, D), k / v (B, KVH, S, D) (the whole cache), mask (B, W) with W <= S (the slots
// attention reads), out (B, H, D); query head h uses kv head h / (H / KVH); D % 16 == 0.
static ffi::Error DecodeAttention(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> q,
                                  ffi::Buffer<ffi::F32> k, ffi::Buffer<ffi::F32> v,
                                  ffi::Buffer<ffi::PRED> mask, ffi::ResultBuffer<ffi::F32> out) {
  const auto qd = q.dimensions(), kd = k.dimensions(), vd = v.dimensions(),
             md = mask.dimensions();
  if (qd.size() != 3 || kd.size() != 4 || md.size() != 2 || vd.size() != 4 ||
      !std::equal(kd.begin(), kd.end(), vd.begin())) {
    return ffi::Error::InvalidArgument(
        "decode_attention: q (B, H, D), k and v (B, KVH, S, D), mask (B, W)");
  }
  const int64_t B = qd[0], H = qd[1], D = qd[2], KVH = kd[1], S = kd[2], W = md[1];
  if (kd[0] != B || kd[3] != D || md[0] != B || W > S || KVH == 0 || H % KVH != 0 ||
      D % 16 != 0) {
    return ffi::Error::InvalidArgument("decode_attention: shapes do not agree");
  }
  const int64_t G = H / KVH;
  const float *qp = q.typed_data(), *kp = k.typed_data(), *vp = v.typed_data();
  const bool* mp = mask.typed_data();
  float* op = out->typed_data();
  parallel_for(pool, B * KVH, thread_count(pool, 2 * B * KVH * W * D * 4),
               [=](int64_t u0, int64_t u1) {
                 std::vector<float> scores(G * W);
                 for (int64_t u = u0; u < u1; ++u) {
                   const int64_t b = u / KVH, h = u % KVH;
                   attend(qp + (b * H + h * G) * D, kp + (b * KVH + h) * S * D,
                          vp + (b * KVH + h) * S * D, mp + b * W, op + (b * H + h * G) * D,
                          G, W, D, scores.data());
                 }
               });
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeekerDecodeAttention, DecodeAttention,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::PRED>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
