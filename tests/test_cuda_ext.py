"""The CUDA kernels of cuda_ext/: the sources compile on any machine with nvcc (PyPI nvidia-cuda-nvcc, in the test
extra); on a CUDA machine the kernels equal the naive references (outputs, final states, gradients incl. the
initial state's, both gradient modes)."""

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import torch

from lit_rlseq.nn import fast_weights as fw
from lit_rlseq.nn import fast_weights_cuda

ROOT = Path(__file__).resolve().parents[1]


def find_nvcc() -> str | None:
    try:
        import nvidia

        for base in nvidia.__path__:
            for candidate in sorted(Path(base).glob("cu*/bin/nvcc")):
                return str(candidate)
    except ImportError:
        pass
    return shutil.which("nvcc")


NVCC = find_nvcc()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="no nvcc: `pip install nvidia-cuda-nvcc` (the test extra) or "
                                                     "a CUDA toolkit on PATH")


@pytest.mark.slow
@needs_nvcc
def test_kernels_compile_for_ampere_and_hopper(tmp_path):
    include = Path(NVCC).parents[1] / "include"
    result = subprocess.run(
        [NVCC, "-c", str(ROOT / "cuda_ext" / "fast_weights_kernels.cu"), "-o", str(tmp_path / "k.o"), "-O3",
         f"-I{include}", "-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=sm_90",
         "-Werror", "all-warnings"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "k.o").stat().st_size > 0


@pytest.mark.slow
@needs_nvcc
def test_torch_bindings_compile():
    from torch.utils.cpp_extension import include_paths

    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler (g++) on PATH")
    include = Path(NVCC).parents[1] / "include"
    result = subprocess.run(
        [compiler, "-std=c++20", "-fsyntax-only", *(f"-I{p}" for p in include_paths()), f"-I{include}",
         f"-I{sysconfig.get_paths()['include']}", "-DTORCH_EXTENSION_NAME=lit_rlseq_fast_weights",
         str(ROOT / "cuda_ext" / "fast_weights.cpp")],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_kernels_are_used_only_where_they_apply():
    x = torch.zeros(2, 2, 2, 32)
    assert not fast_weights_cuda.supports(x)  # CPU
    if torch.cuda.is_available():
        assert fast_weights_cuda.supports(x.cuda())
        assert not fast_weights_cuda.supports(x.cuda().double())
        assert not fast_weights_cuda.supports(torch.zeros(2, 2, 2, 128, device="cuda"))


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: kernels are verified on GPU machines")


@gpu
@pytest.mark.parametrize("grad", ["full", "truncated"])
@pytest.mark.parametrize("d", [32, 64])
@pytest.mark.parametrize("rule", sorted(fw.RULES))
def test_kernels_equal_the_naive_reference(rule, d, grad):
    from tests.test_fast_weights import grads_of, make_inputs

    args, state, first = make_inputs(rule, dtype=torch.float64, t=20, b=3, h=2, d=d)
    naive, fast = fw.RULES[rule]
    out_n, fin_n, g_n = grads_of(naive, args, state, first, grad)  # float64 on the CPU
    to_gpu = lambda xs: [x.float().cuda() for x in xs]  # noqa: E731
    out_c, fin_c, g_c = grads_of(fast, to_gpu(args), tuple(to_gpu(state)), first.cuda(), grad)
    tol = dict(atol=2e-4, rtol=2e-3)
    torch.testing.assert_close(out_c.double().cpu(), out_n, **tol)
    for a, b in zip(fin_c, fin_n):
        torch.testing.assert_close(a.double().cpu(), b, **tol)
    for i, (a, b) in enumerate(zip(g_c, g_n)):
        torch.testing.assert_close(a.double().cpu(), b, **tol, msg=lambda m, i=i: f"gradient of input {i}: {m}")


@gpu
def test_kernels_run_on_the_current_stream():
    """A device guard and the current stream: results on a side stream equal those on the default stream."""
    from tests.test_fast_weights import make_inputs

    args, state, first = make_inputs("delta", dtype=torch.float32, t=10, b=2, h=2, d=32)
    args, state, first = [a.cuda() for a in args], state[0].cuda(), first.cuda()
    expected, _ = fw.fast_delta(*args, state, first)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        got, _ = fw.fast_delta(*args, state, first)
    stream.synchronize()
    torch.testing.assert_close(got, expected)
