"""specoracle.fastpath.torch_cuda."""
