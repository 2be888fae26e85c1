// Torch bindings of the fast-weight kernels (fast_weights_kernels.cu): shape checks, output and buffer allocation.
// Built on first use by lit_rlseq.nn.fast_weights_cuda, which passes the current CUDA stream of the inputs' device
// (as an integer handle) and calls under a device guard; every call checks that the device is the inputs'.
// Only torch/extension.h and the CUDA runtime are included, so the file also compiles against CPU builds of torch.
#include <cuda_runtime.h>
#include <torch/extension.h>

#include <vector>

void fw_delta_forward(const float*, const float*, const float*, const float*, const float*, const float*, float*,
                      float*, float*, int, int, int, int, bool, cudaStream_t);
void fw_delta_backward(const float*, const float*, const float*, const float*, const float*, const float*,
                       const float*, const float*, float*, float*, float*, float*, float*, int, int, int, int, bool,
                       bool, cudaStream_t);
void fw_rdn_forward(const float*, const float*, const float*, const float*, const float*, const float*, const float*,
                    const float*, float*, float*, float*, float*, float*, float*, float*, float*, float*, float*, int,
                    int, int, int, cudaStream_t);
void fw_rdn_backward(const float*, const float*, const float*, const float*, const float*, const float*,
                     const float*, const float*, const float*, const float*, const float*, const float*, float*,
                     float*, float*, float*, float*, float*, float*, int, int, int, int, bool, cudaStream_t);
void fw_delta_rnn_forward(const float*, const float*, const float*, const float*, const float*, const float*,
                          const float*, const float*, const float*, const float*, const float*, float*, float*,
                          float*, float*, float*, float*, float*, int, int, int, int, float, cudaStream_t);
void fw_delta_rnn_backward(const float*, const float*, const float*, const float*, const float*, const float*,
                           const float*, const float*, const float*, const float*, const float*, const float*,
                           const float*, const float*, const float*, float*, float*, float*, float*, float*, float*,
                           float*, float*, float*, float*, int, int, int, int, bool, cudaStream_t);

namespace {

const float* in(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), "fast_weights_cuda: ", name, " must be a CUDA tensor");
  TORCH_CHECK(t.scalar_type() == torch::kFloat32, "fast_weights_cuda: ", name, " must be float32, got ",
              t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), "fast_weights_cuda: ", name, " must be contiguous");
  return t.data_ptr<float>();
}

float* ptr(torch::Tensor& t) { return t.data_ptr<float>(); }

struct Dims {
  int BH, H, T, d;
};

// q: [B, H, T, d] (contiguous, float32, CUDA).
Dims dims(const torch::Tensor& q) {
  TORCH_CHECK(q.dim() == 4, "fast_weights_cuda: inputs must be [B, H, T, d], got ", q.sizes());
  const int d = q.size(3);
  TORCH_CHECK(d >= 1 && d <= 64, "fast_weights_cuda: head size d = ", d, " is not supported (1..64)");
  return {static_cast<int>(q.size(0) * q.size(1)), static_cast<int>(q.size(1)), static_cast<int>(q.size(2)), d};
}

// The caller's device guard must have made the inputs' device current (kernels launch on the current device).
void check_device(const torch::Tensor& t) {
  int current = -1;
  cudaGetDevice(&current);
  TORCH_CHECK(t.is_cuda() && t.get_device() == current, "fast_weights_cuda: inputs are on ", t.device(),
              " but the current CUDA device is ", current, "; call under torch.cuda.device(inputs.device)");
}

cudaStream_t as_stream(int64_t handle) { return reinterpret_cast<cudaStream_t>(handle); }

void check_launch() {
  const cudaError_t err = cudaGetLastError();
  TORCH_CHECK(err == cudaSuccess, "fast_weights_cuda: kernel launch failed: ", cudaGetErrorString(err));
}

}  // namespace

std::vector<torch::Tensor> delta_forward(torch::Tensor q, torch::Tensor k, torch::Tensor v, torch::Tensor beta,
                                         torch::Tensor keep, torch::Tensor W0, bool sum_rule, int64_t stream) {
  check_device(q);
  const Dims s = dims(q);
  auto out = torch::empty_like(q);
  auto Wprior = torch::empty({q.size(0), q.size(1), s.T, s.d, s.d}, q.options());
  auto Wfinal = torch::empty_like(W0);
  fw_delta_forward(in(q, "q"), in(k, "k"), in(v, "v"), in(beta, "beta"), in(keep, "keep"), in(W0, "W0"), ptr(out),
                   ptr(Wprior), ptr(Wfinal), s.BH, s.H, s.T, s.d, sum_rule, as_stream(stream));
  check_launch();
  return {out, Wprior, Wfinal};
}

std::vector<torch::Tensor> delta_backward(torch::Tensor q, torch::Tensor k, torch::Tensor v, torch::Tensor beta,
                                          torch::Tensor keep, torch::Tensor Wprior, torch::Tensor gout,
                                          torch::Tensor gWfinal, bool sum_rule, bool truncated, int64_t stream) {
  check_device(q);
  const Dims s = dims(q);
  auto gq = torch::empty_like(q), gk = torch::empty_like(k), gv = torch::empty_like(v);
  auto gbeta = torch::zeros_like(beta), gW0 = torch::empty_like(gWfinal);
  fw_delta_backward(in(q, "q"), in(k, "k"), in(v, "v"), in(beta, "beta"), in(keep, "keep"), in(Wprior, "Wprior"),
                    in(gout, "grad of outputs"), in(gWfinal, "grad of the final state"), ptr(gq), ptr(gk), ptr(gv),
                    ptr(gbeta), ptr(gW0), s.BH, s.H, s.T, s.d, sum_rule, truncated,
                    as_stream(stream));
  check_launch();
  return {gq, gk, gv, gbeta, gW0};
}

std::vector<torch::Tensor> rdn_forward(torch::Tensor qr, torch::Tensor kr, torch::Tensor vr, torch::Tensor br,
                                       torch::Tensor R, torch::Tensor keep, torch::Tensor W0, torch::Tensor y0, int64_t stream) {
  check_device(qr);
  const Dims s = dims(qr);
  TORCH_CHECK(R.dim() == 3 && R.size(0) == s.H && R.size(1) == s.d && R.size(2) == 3 * s.d + 1,
              "fast_weights_cuda: R must be [H, d, 3d + 1], got ", R.sizes());
  auto out = torch::empty_like(qr);
  auto Wprior = torch::empty({qr.size(0), qr.size(1), s.T, s.d, s.d}, qr.options());
  auto S = torch::empty_like(qr), Q = torch::empty_like(qr), K = torch::empty_like(qr);
  auto U = torch::empty_like(qr), D = torch::empty_like(qr), Bt = torch::empty_like(br);
  auto Wfinal = torch::empty_like(W0), yfinal = torch::empty_like(y0);
  fw_rdn_forward(in(qr, "q"), in(kr, "k"), in(vr, "v"), in(br, "beta"), in(R, "R"), in(keep, "keep"), in(W0, "W0"),
                 in(y0, "y0"), ptr(out), ptr(Wprior), ptr(S), ptr(Q), ptr(K), ptr(U), ptr(D), ptr(Bt), ptr(Wfinal),
                 ptr(yfinal), s.BH, s.H, s.T, s.d, as_stream(stream));
  check_launch();
  return {out, Wprior, S, Q, K, U, D, Bt, Wfinal, yfinal};
}

std::vector<torch::Tensor> rdn_backward(torch::Tensor R, torch::Tensor keep, torch::Tensor Wprior, torch::Tensor S,
                                        torch::Tensor Q, torch::Tensor K, torch::Tensor U, torch::Tensor D,
                                        torch::Tensor Bt, torch::Tensor gout, torch::Tensor gWfinal,
                                        torch::Tensor gyfinal, bool truncated, int64_t stream) {
  check_device(Q);
  const Dims s = dims(Q);
  auto gqr = torch::empty_like(Q), gkr = torch::empty_like(Q), gvr = torch::empty_like(Q);
  auto gbr = torch::zeros_like(Bt), gR = torch::zeros_like(R);
  auto gW0 = torch::empty_like(gWfinal), gy0 = torch::empty_like(gyfinal);
  fw_rdn_backward(in(R, "R"), in(keep, "keep"), in(Wprior, "Wprior"), in(S, "S"), in(Q, "Q"), in(K, "K"),
                  in(U, "U"), in(D, "D"), in(Bt, "Bt"), in(gout, "grad of outputs"),
                  in(gWfinal, "grad of the final W"), in(gyfinal, "grad of the final y"), ptr(gqr), ptr(gkr),
                  ptr(gvr), ptr(gbr), ptr(gR), ptr(gW0), ptr(gy0), s.BH, s.H, s.T, s.d, truncated,
                  as_stream(stream));
  check_launch();
  return {gqr, gkr, gvr, gbr, gR, gW0, gy0};
}

std::vector<torch::Tensor> delta_rnn_forward(torch::Tensor q, torch::Tensor k, torch::Tensor v, torch::Tensor beta,
                                             torch::Tensor kr, torch::Tensor vr, torch::Tensor betar,
                                             torch::Tensor keep, torch::Tensor W0, torch::Tensor R0, torch::Tensor h0,
                                             double eps, int64_t stream) {
  check_device(q);
  const Dims s = dims(q);
  auto out = torch::empty_like(q), P = torch::empty_like(q);
  auto Wprior = torch::empty({q.size(0), q.size(1), s.T, s.d, s.d}, q.options());
  auto Rprior = torch::empty_like(Wprior);
  auto Wfinal = torch::empty_like(W0), Rfinal = torch::empty_like(R0), hfinal = torch::empty_like(h0);
  fw_delta_rnn_forward(in(q, "q"), in(k, "k"), in(v, "v"), in(beta, "beta"), in(kr, "k_r"), in(vr, "v_r"),
                       in(betar, "beta_r"), in(keep, "keep"), in(W0, "W0"), in(R0, "R0"), in(h0, "h0"), ptr(out),
                       ptr(Wprior), ptr(Rprior), ptr(P), ptr(Wfinal), ptr(Rfinal), ptr(hfinal), s.BH, s.H, s.T, s.d,
                       static_cast<float>(eps), as_stream(stream));
  check_launch();
  return {out, Wprior, Rprior, P, Wfinal, Rfinal, hfinal};
}

std::vector<torch::Tensor> delta_rnn_backward(torch::Tensor q, torch::Tensor k, torch::Tensor v, torch::Tensor beta,
                                              torch::Tensor kr, torch::Tensor vr, torch::Tensor betar,
                                              torch::Tensor keep, torch::Tensor Wprior, torch::Tensor Rprior,
                                              torch::Tensor P, torch::Tensor gout, torch::Tensor gWfinal,
                                              torch::Tensor gRfinal, torch::Tensor ghfinal, bool truncated, int64_t stream) {
  check_device(q);
  const Dims s = dims(q);
  auto gq = torch::empty_like(q), gk = torch::empty_like(q), gv = torch::empty_like(q);
  auto gkr = torch::empty_like(q), gvr = torch::empty_like(q);
  auto gbeta = torch::zeros_like(beta), gbetar = torch::zeros_like(betar);
  auto gW0 = torch::empty_like(gWfinal), gR0 = torch::empty_like(gRfinal), gh0 = torch::empty_like(ghfinal);
  fw_delta_rnn_backward(in(q, "q"), in(k, "k"), in(v, "v"), in(beta, "beta"), in(kr, "k_r"), in(vr, "v_r"),
                        in(betar, "beta_r"), in(keep, "keep"), in(Wprior, "Wprior"), in(Rprior, "Rprior"), in(P, "P"),
                        in(gout, "grad of outputs"), in(gWfinal, "grad of the final W"),
                        in(gRfinal, "grad of the final R"), in(ghfinal, "grad of the final h"), ptr(gq), ptr(gk),
                        ptr(gv), ptr(gbeta), ptr(gkr), ptr(gvr), ptr(gbetar), ptr(gW0), ptr(gR0), ptr(gh0), s.BH, s.H,
                        s.T, s.d, truncated, as_stream(stream));
  check_launch();
  return {gq, gk, gv, gbeta, gkr, gvr, gbetar, gW0, gR0, gh0};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("delta_forward", &delta_forward, "LT (sum_rule) / Delta Net forward");
  m.def("delta_backward", &delta_backward, "LT / Delta Net backward");
  m.def("rdn_forward", &rdn_forward, "Recurrent Delta Net forward");
  m.def("rdn_backward", &rdn_backward, "Recurrent Delta Net backward");
  m.def("delta_rnn_forward", &delta_rnn_forward, "Delta RNN forward");
  m.def("delta_rnn_backward", &delta_rnn_backward, "Delta RNN backward");
}
