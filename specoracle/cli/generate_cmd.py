"""`specoracle generate`: speculative decoding on a real target/draft pair, streamed, with
acceptance statistics and the speed-up over plain autoregressive decoding of the target."""
from __future__ import annotations

import functools
import sys

from specoracle.cli import _args, _deps

EPILOG = """examples:
  specoracle generate --target zoo:code-target --draft zoo:code-draft --prompt "def " \\
      --max-new-tokens 100 --k 4 --verify chain --temperature 1 --seed 0
  specoracle generate --target zoo:code-target --draft zoo:code-draft --prompt "import " \\
      --verify block --temperature 0.7 --top-p 0.9 --batch 8
  specoracle generate --target zoo:code-target --draft zoo:code-draft --prompt "class " \\
      --verify greedy --temperature 0 --no-baseline
  specoracle generate --target zoo:code-target --draft zoo:code-draft --prompt "def " \\
      --static-cache --threads 1          # fixed-shape calls over preallocated KV buffers
  specoracle generate --target zoo:code-target --draft zoo:code-draft --prompt "def " \\
      --round device --static-cache     # warps, draws and verifier as torch tensors on the device
  specoracle generate --target zoo:smollm2-135m --draft zoo:smollm2-135m --prompt "Hello" --k 2

Give --draft (an autoregressive draft model) or --drafter (dflash, d2sd), not both. Options the
chosen mode would ignore are rejected: with --drafter, --k, --batch, --backend, --min-p,
--static-cache, --cuda-graphs, --compile, --round, --round-dtype, --no-eos, --device; with --draft,
the drafter options (--block-size, --branches, --dflash-mode, --dflash-path, --vp-path).
--cuda-graphs and --compile need --static-cache; --round-dtype needs --round device; --backend
is the host round's (not with --round device). With --draft, greedy decoding (--temperature 0 or --verify
greedy) draws no noise and warps nothing: --top-k, --top-p, --min-p and --seed are rejected.
Needs the 'models' extra: pip install 'specoracle[models]'.
"""


HELP = "speculative decoding on a real model pair (stream + statistics)"
DESCRIPTION = ("Draft k tokens with the draft model, score k+1 positions with one target call, "
               "verify (chain, block or greedy), roll both KV caches back, continue. Models: "
               "zoo:NAME or a local Hugging Face folder (the hub stays offline).")


def add_parser(subparsers) -> None:
    p = _args.command(subparsers, "generate", HELP, DESCRIPTION, EPILOG)
    p.add_argument("--target", required=True, help="zoo:NAME or a local folder (p)")
    p.add_argument("--draft", default=None, help="zoo:NAME or a local folder (q); same tokenizer")
    p.add_argument("--drafter", choices=["dflash", "d2sd"], default=None,
                   help="a block-diffusion drafter instead of --draft (specoracle/cli/zoo_dflash.py)")
    p.add_argument("--prompt", default="", help="prompt text (empty: the BOS/EOS token)")
    p.add_argument("--max-new-tokens", type=_args.positive_int, default=100)
    p.add_argument("--k", type=_args.positive_int, default=4, help="drafted tokens per round (>= 1)")
    p.add_argument("--verify", choices=["chain", "block", "greedy"], default="chain")
    p.add_argument("--temperature", type=_args.nonneg_float, default=1.0, help="(>= 0; 0 = greedy)")
    p.add_argument("--top-k", type=_args.positive_int, default=None)
    p.add_argument("--top-p", type=_args.unit_open_closed, default=None, help="in (0, 1]")
    p.add_argument("--min-p", type=_args.unit_closed, default=None, help="in [0, 1]")
    p.add_argument("--seed", type=_args.seed, default=0, help="request b uses seed + b (>= 0)")
    p.add_argument("--batch", type=_args.positive_int, default=1,
                   help="copies of the prompt decoded together")
    p.add_argument("--backend", choices=["numba", "reference"], default="numba",
                   help="verification kernels (reference: the float64 oracle, row by row)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the autoregressive run (no speed-up figure)")
    p.add_argument("--no-eos", action="store_true", help="do not stop at EOS")
    p.add_argument("--threads", type=_args.positive_int, default=None, help="torch CPU threads")
    p.add_argument("--static-cache", action="store_true",
                   help="preallocated position-indexed KV buffers and fixed-shape model calls "
                        "(target k+1, draft 2 / 1 tokens): the CUDA-graph-ready path; same tokens")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="with --static-cache on a CUDA model: capture each fixed-shape call as a "
                        "CUDA graph (needs --device cuda)")
    p.add_argument("--compile", default=None, metavar="MODE",
                   choices=["default", "reduce-overhead", "max-autotune"],
                   help="with --static-cache: torch.compile the fixed-shape step (MODE: default, "
                        "reduce-overhead, max-autotune); on the CPU it needs a C++ compiler and "
                        "minutes of compilation (a win only for long runs)")
    p.add_argument("--round", choices=["host", "device"], default="host", dest="round_impl",
                   help="where warps, draft draws and verification run: host (numpy + numba, "
                        "default) or device (torch tensors on the models' device, one read of the "
                        "committed lengths per round)")
    p.add_argument("--round-dtype", choices=["float64", "float32"], default="float64",
                   help="with --round device: compute dtype of warps and verifier (float64 gives "
                        "the host round's tokens; float32 is the fast GPU setting)")
    p.add_argument("--device", type=_args.device, default="cpu", help="cpu (default), cuda or cuda:N")
    try:  # the DFlash / D2SD drafters' own options (another area's module), when present
        from specoracle.cli import zoo_dflash
        zoo_dflash.add_generate_arguments(p)
    except ImportError:
        pass
    p.set_defaults(func=run, check=functools.partial(check, p))


# options of the autoregressive-draft mode (--draft) and of the drafter mode (--drafter)
DRAFT_ONLY = ("k", "batch", "backend", "min_p", "static_cache", "cuda_graphs", "compile",
              "round_impl", "round_dtype", "no_eos", "device")
DRAFTER_ONLY = ("block_size", "branches", "dflash_mode", "dflash_path", "vp_path")
GREEDY_UNUSED = ("top_k", "top_p", "min_p", "seed")


def check(parser, args) -> None:
    """Before any work: extras, option combinations, device, models (exit 2 naming the flag)."""
    _deps.require("models", *_deps.LLM)
    if args.drafter:
        if args.draft:
            raise _args.UsageError("--draft", "give either --draft (an autoregressive draft model) "
                                              "or --drafter, not both")
        _args.reject_unused(args, parser, DRAFT_ONLY, "with --drafter")
        _args.reject_unused(args, parser, ("branches", "vp_path") if args.drafter == "dflash"
                            else ("dflash_mode",), f"with --drafter {args.drafter}")
        from specoracle.cli import zoo_dflash
        zoo_dflash.check_drafter_paths(args)
    else:
        if not args.draft:
            raise _args.UsageError("--draft", "required: a model sharing the target's tokenizer "
                                              "(or --drafter dflash|d2sd)")
        _args.reject_unused(args, parser, DRAFTER_ONLY, "without --drafter")
        if args.cuda_graphs and not args.static_cache:
            raise _args.UsageError("--cuda-graphs", "needs --static-cache")
        if args.compile and not args.static_cache:
            raise _args.UsageError("--compile", "needs --static-cache")
        if args.cuda_graphs and not args.device.startswith("cuda"):
            raise _args.UsageError("--cuda-graphs", "needs --device cuda")
        if args.round_dtype != parser.get_default("round_dtype") and args.round_impl != "device":
            raise _args.UsageError("--round-dtype", "only used with --round device")
        if args.round_impl == "device":  # the device round verifies with the torch twins
            _args.reject_unused(args, parser, ("backend",), "with --round device")
        if args.temperature == 0 or args.verify == "greedy":  # argmax decoding: no warp, no noise
            _args.reject_unused(args, parser, GREEDY_UNUSED,
                                "with greedy decoding (--temperature 0 or --verify greedy)")
        _args.check_device("--device", args.device)
    _args.check_model("--target", args.target)
    _args.check_model("--draft", args.draft)


def run(args) -> int:
    import torch

    from specoracle.fastpath.models.llm.engine import Runtime, autoregressive_generate, speculative_generate
    from specoracle.fastpath.models.llm.hf import load_pair
    from specoracle.fastpath.models.llm.processing import Warp
    from specoracle.reference.types import InvalidInput

    if args.threads:
        torch.set_num_threads(args.threads)
    if getattr(args, "drafter", None):
        from specoracle.cli import zoo_dflash
        return zoo_dflash.run_generate(args)
    if args.verify == "greedy" and args.temperature != 0:
        print("note: --verify greedy decodes at temperature 0", file=sys.stderr)
        args.temperature = 0.0
    try:
        warping = Warp(args.temperature, args.top_k, args.top_p, args.min_p)
        runtime = Runtime(backend=args.backend, cache="static" if args.static_cache else "dynamic",
                          cuda_graphs=args.cuda_graphs, compile_mode=args.compile,
                          round_impl=args.round_impl, round_dtype=args.round_dtype)
        target, draft, tok = load_pair(args.target, args.draft, device=args.device)
    except InvalidInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    eos = None if args.no_eos else tok.eos_token_id
    ids = tok(args.prompt).input_ids if args.prompt else []
    if not ids:
        ids = [tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id]
    prompts = [ids] * args.batch
    shown = [0]

    def stream(gen):
        text = tok.decode(gen[0])
        sys.stdout.write(text[shown[0]:])
        sys.stdout.flush()
        shown[0] = len(text)

    sys.stdout.write(args.prompt)
    res = speculative_generate(target, draft, prompts, k=args.k, method=args.verify,
                               warping=warping, max_new_tokens=args.max_new_tokens, eos_id=eos,
                               seeds=args.seed, progress=stream, runtime=runtime)
    stream(res.tokens)
    print("\n" + "-" * 60)
    print(f"speculative ({args.verify}, k={args.k}, T={args.temperature}, batch {args.batch}, "
          f"{runtime.cache} cache{', CUDA graphs' if runtime.cuda_graphs else ''}, "
          f"{args.round_impl} round): "
          f"{res.n_tokens} tokens in {res.seconds:.2f} s = {res.tokens_per_second:.1f} tok/s")
    print(f"tau (mean tokens per target call, bonus included): {res.tau():.3f}   "
          f"target calls {res.target_calls}, draft calls {res.draft_calls}")
    acc = "  ".join(f"{i + 1}:{a:.3f}" for i, a in enumerate(res.position_acceptance()))
    print(f"per-position acceptance P(n_accepted >= i): {acc}")
    if not args.no_baseline:
        base = autoregressive_generate(target, prompts, warping=warping,
                                       max_new_tokens=args.max_new_tokens, eos_id=eos,
                                       seeds=args.seed, runtime=runtime)
        print(f"autoregressive target (same code path): {base.n_tokens} tokens in "
              f"{base.seconds:.2f} s = {base.tokens_per_second:.1f} tok/s")
        print(f"speed-up: {res.tokens_per_second / base.tokens_per_second:.2f}x")
    return 0
