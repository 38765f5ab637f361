"""Triton kernels without a GPU: (1) the interpreter suite (tests/fastpath/torch_cuda/test_torch_triton_interp.py)
in a subprocess with TRITON_INTERPRET=1; (2) the kernel compiles for an H100 (sm_90)
through Triton's own toolchain (TTIR -> PTX -> cubin with the bundled ptxas), so typing
errors that the interpreter tolerates are caught on a CPU-only machine."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")

HERE = Path(__file__).resolve().parent


def test_interpreter_suite():
    """The quick interpreter tests (float16 is @slow: run the file with TRITON_INTERPRET=1 -m slow)."""
    env = dict(os.environ, TRITON_INTERPRET="1", TRITON_DEFAULT_FP_FUSION="0")
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                          str(HERE / "test_torch_triton_interp.py")],
                         cwd=HERE.parents[2], env=env, capture_output=True, text=True, timeout=600)
    tail = (res.stdout + res.stderr)[-4000:]
    assert res.returncode == 0, tail
    assert " passed" in tail and "skipped" not in tail.split("passed")[-1][:20], tail


def _compile_sm90(fn, types: dict, constexprs: dict):
    """Compile a jitted kernel for an H100 (sm_90) through Triton's toolchain; ``types``
    maps argument names to Triton type strings (every non-constexpr argument)."""
    import inspect

    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    names = list(inspect.signature(fn.fn).parameters)
    sig = {n: ("constexpr" if n in constexprs else types[n]) for n in names}
    src = ASTSource(fn=fn, signature=sig, constexprs=constexprs)
    try:
        k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"enable_fp_fusion": False})
    except RuntimeError as exc:  # no ptxas / CUDA toolchain in this triton install
        if "ptxas" in str(exc).lower():
            pytest.skip(f"triton cannot assemble for sm_90 here: {exc}")
        raise
    assert "cubin" in k.asm and len(k.asm["ptx"]) > 1000
    return k


def _types(dtype, **extra):
    """Argument types shared by the kernels: pointers by suffix, integers for sizes / strides."""
    ptr = f"*{dtype}"
    scr = "*fp64" if dtype == "fp64" else "*fp32"
    base = {"p_ptr": ptr, "q_ptr": ptr, "d_ptr": "*i64", "u_ptr": "*fp64", "n_ptr": "*i64", "scr_ptr": scr,
            "tau_ptr": "*i64", "tok_ptr": "*i64", "st_ptr": "*i32", "fb_ptr": "*i32", "K": "i32", "V": "i32",
            "NT": "i32", "N": "i32", "D": "i32"}
    for s in ("spb", "spk", "sqb", "sqk", "sdb", "sub", "stb", "sob", "spl", "sql", "szb", "szl", "ssb", "sxb",
              "sxl", "seb", "slb"):
        base[s] = "i64"
    base.update(extra)
    return base


@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION")
@pytest.mark.parametrize("dtype,block_mode", [("fp32", False), ("fp32", True),
                                              pytest.param("bf16", False, marks=pytest.mark.slow),
                                              pytest.param("fp64", True, marks=pytest.mark.slow)])
def test_compiles_for_sm90(dtype, block_mode):
    """The chain / block kernel from probabilities."""
    import triton.language as tl

    from specoracle.fastpath.torch_cuda import triton_kernels as tk
    if tk.interpreting():
        pytest.skip("compilation check needs the compiling (non-interpreter) triton")
    cd = tl.float64 if dtype == "fp64" else tl.float32
    _compile_sm90(tk._kernel(), _types(dtype), {"CD": cd, "BLOCK_K": 8, "BLOCK_V": 1024,
                                                "BLOCK_MODE": block_mode, "BLOCK_T": 256})


@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION")
@pytest.mark.parametrize("dtype,block_mode,warps", [("bf16", False, (False, True, False)),
                                                    pytest.param("bf16", True, (True, True, True),
                                                                 marks=pytest.mark.slow),
                                                    pytest.param("fp64", False, (True, True, True),
                                                                 marks=pytest.mark.slow)])
def test_logits_kernel_compiles_for_sm90(dtype, block_mode, warps):
    """The warped-logits kernel (temperature + top-k / top-p / min-p inside, key bisection
    in while loops): bf16 chain with top-p (bench row 6) by default, the rest @slow."""
    import triton.language as tl

    from specoracle.fastpath.torch_cuda import triton_logits as tlg
    from specoracle.fastpath.torch_cuda import triton_kernels as tk
    if tk.interpreting():
        pytest.skip("compilation check needs the compiling (non-interpreter) triton")
    f = "fp64" if dtype == "fp64" else "fp32"
    types = _types(dtype, t_ptr=f"*{f}", k_ptr="*i64", tp_ptr=f"*{f}", mp_ptr=f"*{f}", ws_ptr="*fp64")
    hk, hp, hm = warps
    _compile_sm90(tlg._kernel(), types, {"CD": tl.float64 if dtype == "fp64" else tl.float32, "BLOCK_V": 1024,
                                         "BLOCK_T": 256, "BLOCK_MODE": block_mode, "HAS_TOPK": hk, "HAS_TOPP": hp,
                                         "HAS_MINP": hm, "NREC": 16, "FULL_CHECK": True})


@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION")
def test_tree_and_gaussian_kernels_compile_for_sm90():
    import triton.language as tl

    from specoracle.fastpath.torch_cuda import triton_gaussian as tg
    from specoracle.fastpath.torch_cuda import triton_kernels as tk
    from specoracle.fastpath.torch_cuda import triton_tree as tt
    if tk.interpreting():
        pytest.skip("compilation check needs the compiling (non-interpreter) triton")
    _compile_sm90(tt._tree_kernel, _types("fp32", tok_ptr="*i64", par_ptr="*i64", st_ptr="*i32", out_ptr="*i64",
                                          first_ptr="*i64", nem_ptr="*i64", bonus_ptr="*i32"),
                  {"CD": tl.float32, "BLOCK_N": 16, "BLOCK_V": 1024, "BLOCK_T": 256})
    _compile_sm90(tt._mss_kernel, _types("bf16", tok_ptr="*i64", par_ptr="*i64", st_ptr="*i32", res_ptr="*fp32",
                                         out_ptr="*i64", first_ptr="*i64", dep_ptr="*i64", bonus_ptr="*i32"),
                  {"CD": tl.float32, "BLOCK_N": 16, "BLOCK_V": 1024, "BLOCK_T": 256})
    _compile_sm90(tg._stats_kernel, _types("fp32", mp_ptr="*fp32", mq_ptr="*fp32", z_ptr="*fp32", s_ptr="*fp64",
                                           x_ptr="*fp64", ell_ptr="*fp64", dl_ptr="*fp64"), {"BLOCK_D": 1024})
    _compile_sm90(tg._fill_kernel, _types("fp32", x_ptr="*fp64", tau_ptr="*i64", emit_ptr="*i32",
                                          last_ptr="*fp64"), {"BLOCK_D": 1024})
