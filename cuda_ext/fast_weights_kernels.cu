// CUDA kernels for the fast-weight rules of lit_rlseq.nn.fast_weights (LT, Delta Net, RDN, Delta RNN).
//
// Layout: per-step inputs [BH, T, d] (row b*H + h), scalars per step [BH, T], episode-start masks keep [B, T]
// (0 where an episode starts: every state is multiplied by it before the step), states [BH, d, d] (W[key][value])
// and [BH, d]. One block per (batch, head), d threads (d <= 64); thread j owns column j of the fast weight
// (and, in the backward pass, of its gradient), which live in shared memory. fp32 throughout.
//
// The forward pass stores each step's prior state W'_t (after the reset, before the write) in a [BH, T, d, d]
// buffer; the backward pass reads it instead of undoing updates (a reset cannot be undone), so gradients are
// exact with episode starts anywhere and reach the initial state. `truncated` reproduces the original code's
// gradients: no gradient through any state from one step to the next (and none to the initial state).
//
// Plain CUDA (no torch headers): fast_weights.cpp binds these launchers to torch tensors on the current stream.

#include <cuda_runtime.h>

namespace {

__device__ __forceinline__ float block_sum(float x, float* red, int d) {
  red[threadIdx.x] = x;
  __syncthreads();
  float s = 0.f;
  for (int j = 0; j < d; ++j) s += red[j];
  __syncthreads();
  return s;
}

__device__ __forceinline__ float block_max(float x, float* red, int d) {
  red[threadIdx.x] = x;
  __syncthreads();
  float m = red[0];
  for (int j = 1; j < d; ++j) m = fmaxf(m, red[j]);
  __syncthreads();
  return m;
}

__device__ __forceinline__ float sigmoidf(float x) { return 1.f / (1.f + expf(-x)); }

// One delta (or sum) step on column j = threadIdx.x of sW (already reset): W += k uᵀ, returns o_j = (Wᵀq)_j.
__device__ __forceinline__ float delta_step(int d, float* sW, const float* sk, const float* sq, float v, float beta,
                                            bool sum_rule, float& u, float& diff) {
  const int j = threadIdx.x;
  float vbar = 0.f;
  for (int i = 0; i < d; ++i) vbar += sW[i * d + j] * sk[i];
  diff = v - vbar;
  u = sum_rule ? v : beta * diff;
  float o = 0.f;
  for (int i = 0; i < d; ++i) {
    const float w = sW[i * d + j] + sk[i] * u;
    sW[i * d + j] = w;
    o += w * sq[i];
  }
  return o;
}

// The backward of one delta_step. sG holds dL/dW_t on entry (column-owned), dL/dW'_t on exit. su: the step's u,
// sgy: dL/do. Outputs for this thread: gq (row i = tid), gk (row), gv (column j = tid), gbeta (every thread).
__device__ __forceinline__ void delta_step_backward(int d, const float* sWp, float* sG, const float* sq, const float* sk,
                                                    const float* su, const float* sgy, float* sgv, float* red,
                                                    float diff, float beta, bool sum_rule, float& gq, float& gk,
                                                    float& gv, float& gbeta) {
  const int t = threadIdx.x;
  for (int i = 0; i < d; ++i) sG[i * d + t] += sq[i] * sgy[t];  // o = Wᵀq
  __syncthreads();
  float a = 0.f, b = 0.f, c = 0.f;
  for (int j = 0; j < d; ++j) {
    a += (sWp[t * d + j] + sk[t] * su[j]) * sgy[j];  // gq_t = (W_t gy)_t
    b += sG[t * d + j] * su[j];                       // gk_t from the write k uᵀ
  }
  for (int i = 0; i < d; ++i) c += sG[i * d + t] * sk[i];  // gu_t
  gq = a;
  gk = b;
  gv = sum_rule ? c : beta * c;
  red[t] = c * diff;
  sgv[t] = gv;
  __syncthreads();
  gbeta = 0.f;
  if (!sum_rule) {
    for (int j = 0; j < d; ++j) gbeta += red[j];
    for (int i = 0; i < d; ++i) sG[i * d + t] -= sk[i] * gv;  // v̄ = W'ᵀk, dL/dv̄ = -gv
    float e = 0.f;
    for (int j = 0; j < d; ++j) e += sWp[t * d + j] * sgv[j];
    gk -= e;
  }
  __syncthreads();
}

// Backward, per step: loads the prior state W'_t (column j = threadIdx.x) and the step's key and query into shared
// memory, recomputes the write u (into su) and returns v_j - v̄_j. Ends synchronised.
__device__ __forceinline__ float load_step(int d, const float* prior, float* sWp, float* sk, float* sq, float* su,
                                           float kj, float qj, float v, float beta, bool sum_rule) {
  const int j = threadIdx.x;
  for (int i = 0; i < d; ++i) sWp[i * d + j] = prior[i * d + j];
  sk[j] = kj;
  sq[j] = qj;
  __syncthreads();
  float vbar = 0.f;
  for (int i = 0; i < d; ++i) vbar += sWp[i * d + j] * sk[i];
  const float diff = v - vbar;
  su[j] = sum_rule ? v : beta * diff;
  __syncthreads();
  return diff;
}

// ---------------------------------------------------------------------------------------------------------------
// LT (sum_rule) and Delta Net.
__global__ void delta_forward_kernel(const float* __restrict__ q, const float* __restrict__ k,
                                     const float* __restrict__ v, const float* __restrict__ beta,
                                     const float* __restrict__ keep, const float* __restrict__ W0,
                                     float* __restrict__ out, float* __restrict__ Wprior, float* __restrict__ Wfinal,
                                     int H, int T, int d, bool sum_rule) {
  extern __shared__ float sh[];
  float* sW = sh;
  float* sk = sW + d * d;
  float* sq = sk + d;
  const int bh = blockIdx.x, b = bh / H, j = threadIdx.x;
  const size_t dd = (size_t)d * d;
  for (int i = 0; i < d; ++i) sW[i * d + j] = W0[bh * dd + i * d + j];
  for (int t = 0; t < T; ++t) {
    const size_t x = ((size_t)bh * T + t) * d;
    const float m = keep[b * T + t];
    sk[j] = k[x + j];
    sq[j] = q[x + j];
    for (int i = 0; i < d; ++i) {
      const float w = sW[i * d + j] * m;
      sW[i * d + j] = w;
      Wprior[((size_t)bh * T + t) * dd + i * d + j] = w;
    }
    __syncthreads();
    float u, diff;
    out[x + j] = delta_step(d, sW, sk, sq, v[x + j], sum_rule ? 0.f : beta[(size_t)bh * T + t], sum_rule, u, diff);
    __syncthreads();
  }
  for (int i = 0; i < d; ++i) Wfinal[bh * dd + i * d + j] = sW[i * d + j];
}

__global__ void delta_backward_kernel(const float* __restrict__ q, const float* __restrict__ k,
                                      const float* __restrict__ v, const float* __restrict__ beta,
                                      const float* __restrict__ keep, const float* __restrict__ Wprior,
                                      const float* __restrict__ gout, const float* __restrict__ gWfinal,
                                      float* __restrict__ gq, float* __restrict__ gk, float* __restrict__ gv,
                                      float* __restrict__ gbeta, float* __restrict__ gW0, int H, int T, int d,
                                      bool sum_rule, bool truncated) {
  extern __shared__ float sh[];
  float* sWp = sh;
  float* sG = sWp + d * d;
  float* sk = sG + d * d;
  float* sq = sk + d;
  float* su = sq + d;
  float* sgy = su + d;
  float* sgv = sgy + d;
  float* red = sgv + d;
  const int bh = blockIdx.x, b = bh / H, j = threadIdx.x;
  const size_t dd = (size_t)d * d;
  for (int i = 0; i < d; ++i) sG[i * d + j] = gWfinal[bh * dd + i * d + j];
  for (int t = T - 1; t >= 0; --t) {
    const size_t x = ((size_t)bh * T + t) * d;
    const float bt = sum_rule ? 0.f : beta[(size_t)bh * T + t];
    sgy[j] = gout[x + j];
    const float diff = load_step(d, Wprior + ((size_t)bh * T + t) * dd, sWp, sk, sq, su, k[x + j], q[x + j], v[x + j],
                                 bt, sum_rule);
    float a, c, e, gb;
    delta_step_backward(d, sWp, sG, sq, sk, su, sgy, sgv, red, diff, bt, sum_rule, a, c, e, gb);
    gq[x + j] = a;
    gk[x + j] = c;
    gv[x + j] = e;
    if (!sum_rule && j == 0) gbeta[(size_t)bh * T + t] = gb;
    const float m = truncated ? 0.f : keep[b * T + t];
    for (int i = 0; i < d; ++i) sG[i * d + j] *= m;
    __syncthreads();
  }
  for (int i = 0; i < d; ++i) gW0[bh * dd + i * d + j] = sG[i * d + j];
}

// ---------------------------------------------------------------------------------------------------------------
// RDN. R: [H, d, 3d+1] = [R_q | R_k | R_v | r_b]; qr, kr, vr: the slow net's raw outputs; br [BH, T].
// Saved per step for the backward: S = tanh(y'), Q, K (softmaxed), U, D (= v - v̄), Bt (= β); [BH, T, d] / [BH, T].
__global__ void rdn_forward_kernel(const float* __restrict__ qr, const float* __restrict__ kr,
                                   const float* __restrict__ vr, const float* __restrict__ br,
                                   const float* __restrict__ R, const float* __restrict__ keep,
                                   const float* __restrict__ W0, const float* __restrict__ y0, float* __restrict__ out,
                                   float* __restrict__ Wprior, float* __restrict__ S, float* __restrict__ Q,
                                   float* __restrict__ K, float* __restrict__ U, float* __restrict__ D,
                                   float* __restrict__ Bt, float* __restrict__ Wfinal, float* __restrict__ yfinal,
                                   int H, int T, int d) {
  extern __shared__ float sh[];
  float* sW = sh;
  float* sk = sW + d * d;
  float* sq = sk + d;
  float* ss = sq + d;
  float* red = ss + d;
  const int bh = blockIdx.x, b = bh / H, h = bh % H, j = threadIdx.x;
  const size_t dd = (size_t)d * d;
  const int width = 3 * d + 1;
  const float* Rh = R + (size_t)h * d * width;
  for (int i = 0; i < d; ++i) sW[i * d + j] = W0[bh * dd + i * d + j];
  float y = y0[(size_t)bh * d + j];
  for (int t = 0; t < T; ++t) {
    const size_t x = ((size_t)bh * T + t) * d, xs = (size_t)bh * T + t;
    const float m = keep[b * T + t];
    for (int i = 0; i < d; ++i) {
      const float w = sW[i * d + j] * m;
      sW[i * d + j] = w;
      Wprior[xs * dd + i * d + j] = w;
    }
    const float s = tanhf(y * m);
    ss[j] = s;
    S[x + j] = s;
    __syncthreads();
    float aq = qr[x + j], ak = kr[x + j], v = vr[x + j], ab = 0.f;
    for (int i = 0; i < d; ++i) {
      const float si = ss[i];
      aq += si * Rh[i * width + j];
      ak += si * Rh[i * width + d + j];
      v += si * Rh[i * width + 2 * d + j];
      ab += si * Rh[i * width + 3 * d];
    }
    const float beta = sigmoidf(br[xs] + ab);
    const float mq = block_max(aq, red, d), mk = block_max(ak, red, d);
    const float eq = expf(aq - mq), ek = expf(ak - mk);
    const float zq = block_sum(eq, red, d), zk = block_sum(ek, red, d);
    sq[j] = eq / zq;
    sk[j] = ek / zk;
    __syncthreads();
    float u, diff;
    y = delta_step(d, sW, sk, sq, v, beta, false, u, diff);
    out[x + j] = y;
    Q[x + j] = sq[j];
    K[x + j] = sk[j];
    U[x + j] = u;
    D[x + j] = diff;
    if (j == 0) Bt[xs] = beta;
    __syncthreads();
  }
  for (int i = 0; i < d; ++i) Wfinal[bh * dd + i * d + j] = sW[i * d + j];
  yfinal[(size_t)bh * d + j] = y;
}

// gR: [H, d, 3d+1], accumulated with atomicAdd over the batch (zeroed by the caller).
__global__ void rdn_backward_kernel(const float* __restrict__ R, const float* __restrict__ keep,
                                   const float* __restrict__ Wprior, const float* __restrict__ S,
                                   const float* __restrict__ Q, const float* __restrict__ K,
                                   const float* __restrict__ U, const float* __restrict__ D,
                                   const float* __restrict__ Bt, const float* __restrict__ gout,
                                   const float* __restrict__ gWfinal, const float* __restrict__ gyfinal,
                                   float* __restrict__ gqr, float* __restrict__ gkr, float* __restrict__ gvr,
                                   float* __restrict__ gbr, float* __restrict__ gR, float* __restrict__ gW0,
                                   float* __restrict__ gy0, int H, int T, int d, bool truncated) {
  extern __shared__ float sh[];
  float* sWp = sh;
  float* sG = sWp + d * d;
  float* sk = sG + d * d;
  float* sq = sk + d;
  float* su = sq + d;
  float* sgy = su + d;
  float* sgv = sgy + d;
  float* red = sgv + d;
  float* ss = red + d;
  float* sgc = ss + d;  // 3d + 1
  const int bh = blockIdx.x, b = bh / H, h = bh % H, j = threadIdx.x;
  const size_t dd = (size_t)d * d;
  const int width = 3 * d + 1;
  const float* Rh = R + (size_t)h * d * width;
  float* gRh = gR + (size_t)h * d * width;
  for (int i = 0; i < d; ++i) sG[i * d + j] = gWfinal[bh * dd + i * d + j];
  float gy = gyfinal[(size_t)bh * d + j];
  for (int t = T - 1; t >= 0; --t) {
    const size_t x = ((size_t)bh * T + t) * d, xs = (size_t)bh * T + t;
    for (int i = 0; i < d; ++i) sWp[i * d + j] = Wprior[xs * dd + i * d + j];
    const float qj = Q[x + j], kj = K[x + j], s = S[x + j], beta = Bt[xs], diff = D[x + j];
    sq[j] = qj;
    sk[j] = kj;
    su[j] = U[x + j];
    ss[j] = s;
    gy += gout[x + j];
    sgy[j] = gy;
    __syncthreads();
    float gq, gk, gv, gbeta;
    delta_step_backward(d, sWp, sG, sq, sk, su, sgy, sgv, red, diff, beta, false, gq, gk, gv, gbeta);
    const float dq = block_sum(qj * gq, red, d), dk = block_sum(kj * gk, red, d);
    const float gaq = qj * (gq - dq), gak = kj * (gk - dk), gab = gbeta * beta * (1.f - beta);
    gqr[x + j] = gaq;
    gkr[x + j] = gak;
    gvr[x + j] = gv;
    if (j == 0) gbr[xs] = gab;
    sgc[j] = gaq;
    sgc[d + j] = gak;
    sgc[2 * d + j] = gv;
    if (j == 0) sgc[3 * d] = gab;
    __syncthreads();
    for (int i = 0; i < d; ++i) {  // gR += s ⊗ gc (columns j, d+j, 2d+j; thread 0 also the r_b column)
      const float si = ss[i];
      atomicAdd(&gRh[i * width + j], si * gaq);
      atomicAdd(&gRh[i * width + d + j], si * gak);
      atomicAdd(&gRh[i * width + 2 * d + j], si * gv);
      if (j == 0) atomicAdd(&gRh[i * width + 3 * d], si * gab);
    }
    float gs = 0.f;  // row j of R times gc
    for (int c = 0; c < width; ++c) gs += Rh[j * width + c] * sgc[c];
    const float m = truncated ? 0.f : keep[b * T + t];
    gy = gs * (1.f - s * s) * m;
    for (int i = 0; i < d; ++i) sG[i * d + j] *= m;
    __syncthreads();
  }
  for (int i = 0; i < d; ++i) gW0[bh * dd + i * d + j] = sG[i * d + j];
  gy0[(size_t)bh * d + j] = gy;
}

// ---------------------------------------------------------------------------------------------------------------
// Delta RNN: W by the delta rule with (q, k, v, β) gives z = W_tᵀq; R by the delta rule with (k_r, v_r, β_r), read
// by p = softmax_eps(h'), h_t = R_tᵀ p + z_t. Saved: Wprior, Rprior [BH, T, d, d], P [BH, T, d].
__global__ void delta_rnn_forward_kernel(const float* __restrict__ q, const float* __restrict__ k,
                                         const float* __restrict__ v, const float* __restrict__ beta,
                                         const float* __restrict__ kr, const float* __restrict__ vr,
                                         const float* __restrict__ betar, const float* __restrict__ keep,
                                         const float* __restrict__ W0, const float* __restrict__ R0,
                                         const float* __restrict__ h0, float* __restrict__ out,
                                         float* __restrict__ Wprior, float* __restrict__ Rprior, float* __restrict__ P,
                                         float* __restrict__ Wfinal, float* __restrict__ Rfinal,
                                         float* __restrict__ hfinal, int H, int T, int d, float eps) {
  extern __shared__ float sh[];
  float* sW = sh;
  float* sR = sW + d * d;
  float* sk = sR + d * d;
  float* sq = sk + d;
  float* skr = sq + d;
  float* sp = skr + d;
  float* red = sp + d;
  const int bh = blockIdx.x, b = bh / H, j = threadIdx.x;
  const size_t dd = (size_t)d * d;
  for (int i = 0; i < d; ++i) {
    sW[i * d + j] = W0[bh * dd + i * d + j];
    sR[i * d + j] = R0[bh * dd + i * d + j];
  }
  float hj = h0[(size_t)bh * d + j];
  for (int t = 0; t < T; ++t) {
    const size_t x = ((size_t)bh * T + t) * d, xs = (size_t)bh * T + t;
    const float m = keep[b * T + t];
    for (int i = 0; i < d; ++i) {
      const float w = sW[i * d + j] * m, r = sR[i * d + j] * m;
      sW[i * d + j] = w;
      sR[i * d + j] = r;
      Wprior[xs * dd + i * d + j] = w;
      Rprior[xs * dd + i * d + j] = r;
    }
    hj *= m;
    const float mx = block_max(hj, red, d);
    const float e = expf(hj - mx);
    const float z = block_sum(e, red, d);
    sp[j] = e / (z + eps);
    P[x + j] = sp[j];
    sk[j] = k[x + j];
    sq[j] = q[x + j];
    skr[j] = kr[x + j];
    __syncthreads();
    float u, diff;
    const float zj = delta_step(d, sW, sk, sq, v[x + j], beta[xs], false, u, diff);
    const float read = delta_step(d, sR, skr, sp, vr[x + j], betar[xs], false, u, diff);
    hj = read + zj;
    out[x + j] = hj;
    __syncthreads();
  }
  for (int i = 0; i < d; ++i) {
    Wfinal[bh * dd + i * d + j] = sW[i * d + j];
    Rfinal[bh * dd + i * d + j] = sR[i * d + j];
  }
  hfinal[(size_t)bh * d + j] = hj;
}

__global__ void delta_rnn_backward_kernel(const float* __restrict__ q, const float* __restrict__ k,
                                          const float* __restrict__ v, const float* __restrict__ beta,
                                          const float* __restrict__ kr, const float* __restrict__ vr,
                                          const float* __restrict__ betar, const float* __restrict__ keep,
                                          const float* __restrict__ Wprior, const float* __restrict__ Rprior,
                                          const float* __restrict__ P, const float* __restrict__ gout,
                                          const float* __restrict__ gWfinal, const float* __restrict__ gRfinal,
                                          const float* __restrict__ ghfinal, float* __restrict__ gq,
                                          float* __restrict__ gk, float* __restrict__ gv, float* __restrict__ gbeta,
                                          float* __restrict__ gkr, float* __restrict__ gvr,
                                          float* __restrict__ gbetar, float* __restrict__ gW0,
                                          float* __restrict__ gR0, float* __restrict__ gh0, int H, int T, int d,
                                          bool truncated) {
  extern __shared__ float sh[];
  float* sWp = sh;  // W' or R' (one at a time)
  float* sGW = sWp + d * d;
  float* sGR = sGW + d * d;
  float* sk = sGR + d * d;
  float* sq = sk + d;
  float* su = sq + d;
  float* sgy = su + d;
  float* sgv = sgy + d;
  float* red = sgv + d;
  const int bh = blockIdx.x, b = bh / H, j = threadIdx.x;
  const size_t dd = (size_t)d * d;
  for (int i = 0; i < d; ++i) {
    sGW[i * d + j] = gWfinal[bh * dd + i * d + j];
    sGR[i * d + j] = gRfinal[bh * dd + i * d + j];
  }
  float gh = ghfinal[(size_t)bh * d + j];
  for (int t = T - 1; t >= 0; --t) {
    const size_t x = ((size_t)bh * T + t) * d, xs = (size_t)bh * T + t;
    gh += gout[x + j];
    float a, c, e, gb;
    // z = W_tᵀ q (the W part), dL/dz = gh.
    sgy[j] = gh;
    float diff = load_step(d, Wprior + xs * dd, sWp, sk, sq, su, k[x + j], q[x + j], v[x + j], beta[xs], false);
    delta_step_backward(d, sWp, sGW, sq, sk, su, sgy, sgv, red, diff, beta[xs], false, a, c, e, gb);
    gq[x + j] = a;
    gk[x + j] = c;
    gv[x + j] = e;
    if (j == 0) gbeta[xs] = gb;
    // read = R_tᵀ p (the R part), dL/dread = gh; gp = dL/dp.
    const float pj = P[x + j];
    diff = load_step(d, Rprior + xs * dd, sWp, sk, sq, su, kr[x + j], pj, vr[x + j], betar[xs], false);
    delta_step_backward(d, sWp, sGR, sq, sk, su, sgy, sgv, red, diff, betar[xs], false, a, c, e, gb);
    gkr[x + j] = c;
    gvr[x + j] = e;
    if (j == 0) gbetar[xs] = gb;
    // p = softmax_eps(h'): dL/dh'_j = p_j (gp_j - Σ_i gp_i p_i).
    const float dot = block_sum(a * pj, red, d);
    const float m = truncated ? 0.f : keep[b * T + t];
    gh = pj * (a - dot) * m;
    for (int i = 0; i < d; ++i) {
      sGW[i * d + j] *= m;
      sGR[i * d + j] *= m;
    }
    __syncthreads();
  }
  for (int i = 0; i < d; ++i) {
    gW0[bh * dd + i * d + j] = sGW[i * d + j];
    gR0[bh * dd + i * d + j] = sGR[i * d + j];
  }
  gh0[(size_t)bh * d + j] = gh;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Launchers (called by fast_weights.cpp on the current stream of the inputs' device).
#define SHARED(n) ((size_t)(n) * sizeof(float))

// Kernels needing more than the default 48 KB of dynamic shared memory (d = 64: Delta RNN's backward) must say so.
template <typename Kernel>
static void allow_shared(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

void fw_delta_forward(const float* q, const float* k, const float* v, const float* beta, const float* keep,
                      const float* W0, float* out, float* Wprior, float* Wfinal, int BH, int H, int T, int d,
                      bool sum_rule, cudaStream_t stream) {
  allow_shared(delta_forward_kernel, SHARED(d * d + 2 * d));
  delta_forward_kernel<<<BH, d, SHARED(d * d + 2 * d), stream>>>(q, k, v, beta, keep, W0, out, Wprior, Wfinal, H, T,
                                                                  d, sum_rule);
}

void fw_delta_backward(const float* q, const float* k, const float* v, const float* beta, const float* keep,
                       const float* Wprior, const float* gout, const float* gWfinal, float* gq, float* gk, float* gv,
                       float* gbeta, float* gW0, int BH, int H, int T, int d, bool sum_rule, bool truncated,
                       cudaStream_t stream) {
  allow_shared(delta_backward_kernel, SHARED(2 * d * d + 6 * d));
  delta_backward_kernel<<<BH, d, SHARED(2 * d * d + 6 * d), stream>>>(q, k, v, beta, keep, Wprior, gout, gWfinal, gq,
                                                                       gk, gv, gbeta, gW0, H, T, d, sum_rule,
                                                                       truncated);
}

void fw_rdn_forward(const float* qr, const float* kr, const float* vr, const float* br, const float* R,
                    const float* keep, const float* W0, const float* y0, float* out, float* Wprior, float* S, float* Q,
                    float* K, float* U, float* D, float* Bt, float* Wfinal, float* yfinal, int BH, int H, int T, int d,
                    cudaStream_t stream) {
  allow_shared(rdn_forward_kernel, SHARED(d * d + 4 * d));
  rdn_forward_kernel<<<BH, d, SHARED(d * d + 4 * d), stream>>>(qr, kr, vr, br, R, keep, W0, y0, out, Wprior, S, Q, K,
                                                                U, D, Bt, Wfinal, yfinal, H, T, d);
}

void fw_rdn_backward(const float* R, const float* keep, const float* Wprior, const float* S, const float* Q,
                     const float* K, const float* U, const float* D, const float* Bt, const float* gout,
                     const float* gWfinal, const float* gyfinal, float* gqr, float* gkr, float* gvr, float* gbr,
                     float* gR, float* gW0, float* gy0, int BH, int H, int T, int d, bool truncated,
                     cudaStream_t stream) {
  allow_shared(rdn_backward_kernel, SHARED(2 * d * d + 10 * d + 1));
  rdn_backward_kernel<<<BH, d, SHARED(2 * d * d + 10 * d + 1), stream>>>(R, keep, Wprior, S, Q, K, U, D, Bt, gout,
                                                                          gWfinal, gyfinal, gqr, gkr, gvr, gbr, gR,
                                                                          gW0, gy0, H, T, d, truncated);
}

void fw_delta_rnn_forward(const float* q, const float* k, const float* v, const float* beta, const float* kr,
                          const float* vr, const float* betar, const float* keep, const float* W0, const float* R0,
                          const float* h0, float* out, float* Wprior, float* Rprior, float* P, float* Wfinal,
                          float* Rfinal, float* hfinal, int BH, int H, int T, int d, float eps, cudaStream_t stream) {
  allow_shared(delta_rnn_forward_kernel, SHARED(2 * d * d + 5 * d));
  delta_rnn_forward_kernel<<<BH, d, SHARED(2 * d * d + 5 * d), stream>>>(q, k, v, beta, kr, vr, betar, keep, W0, R0,
                                                                          h0, out, Wprior, Rprior, P, Wfinal, Rfinal,
                                                                          hfinal, H, T, d, eps);
}

void fw_delta_rnn_backward(const float* q, const float* k, const float* v, const float* beta, const float* kr,
                           const float* vr, const float* betar, const float* keep, const float* Wprior,
                           const float* Rprior, const float* P, const float* gout, const float* gWfinal,
                           const float* gRfinal, const float* ghfinal, float* gq, float* gk, float* gv, float* gbeta,
                           float* gkr, float* gvr, float* gbetar, float* gW0, float* gR0, float* gh0, int BH, int H,
                           int T, int d, bool truncated, cudaStream_t stream) {
  allow_shared(delta_rnn_backward_kernel, SHARED(3 * d * d + 6 * d));
  delta_rnn_backward_kernel<<<BH, d, SHARED(3 * d * d + 6 * d), stream>>>(
      q, k, v, beta, kr, vr, betar, keep, Wprior, Rprior, P, gout, gWfinal, gRfinal, ghfinal, gq, gk, gv, gbeta, gkr,
      gvr, gbetar, gW0, gR0, gh0, H, T, d, truncated);
}
