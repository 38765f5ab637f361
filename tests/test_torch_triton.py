"""Triton kernels without a GPU: (1) the interpreter suite (tests/test_torch_triton_interp.py)
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
                         cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=600)
    tail = (res.stdout + res.stderr)[-4000:]
    assert res.returncode == 0, tail
    assert " passed" in tail and "skipped" not in tail.split("passed")[-1][:20], tail


@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION")
@pytest.mark.parametrize("dtype,block_mode", [("fp32", False), ("fp32", True), ("bf16", "logits"),
                                              pytest.param("bf16", False, marks=pytest.mark.slow),
                                              pytest.param("fp64", True, marks=pytest.mark.slow)])
def test_compiles_for_sm90(dtype, block_mode):
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from specoracle.fastpath.torch_cuda import triton_kernels as tk
    if tk.interpreting():
        pytest.skip("compilation check needs the compiling (non-interpreter) triton")
    ptr = f"*{dtype}"
    sig = {"p_ptr": ptr, "q_ptr": ptr, "d_ptr": "*i64", "u_ptr": "*fp64", "n_ptr": "*i64",
           "scr_ptr": "*fp64" if dtype == "fp64" else "*fp32", "tau_ptr": "*i64", "tok_ptr": "*i64",
           "st_ptr": "*i32", "fb_ptr": "*i32", "K": "i32", "V": "i32", "NT": "i32", "spb": "i64",
           "spk": "i64", "sqb": "i64", "sqk": "i64", "sdb": "i64", "sub": "i64",
           "CD": "constexpr", "BLOCK_K": "constexpr", "BLOCK_V": "constexpr", "BLOCK_MODE": "constexpr",
           "BLOCK_T": "constexpr"}
    cd = tl.float64 if dtype == "fp64" else tl.float32
    if block_mode == "logits":  # the streaming-log-sum-exp kernel: t_ptr, no BLOCK_K / BLOCK_MODE
        sig = {k: v for k, v in sig.items() if k not in ("BLOCK_K", "BLOCK_MODE")}
        sig = dict(list(sig.items())[:5] + [("t_ptr", "*fp32")] + list(sig.items())[5:])
        src = ASTSource(fn=tk._logits_kernel(), signature=sig,
                        constexprs={"CD": cd, "BLOCK_V": 1024, "BLOCK_T": 256})
        k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"enable_fp_fusion": False})
        assert "cubin" in k.asm
        return
    src = ASTSource(fn=tk._kernel(), signature=sig,
                    constexprs={"CD": cd, "BLOCK_K": 8, "BLOCK_V": 1024, "BLOCK_MODE": block_mode,
                                "BLOCK_T": 256})
    try:
        k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"enable_fp_fusion": False})
    except RuntimeError as exc:  # no ptxas / CUDA toolchain in this triton install
        if "ptxas" in str(exc).lower():
            pytest.skip(f"triton cannot assemble for sm_90 here: {exc}")
        raise
    assert "cubin" in k.asm and len(k.asm["ptx"]) > 1000
