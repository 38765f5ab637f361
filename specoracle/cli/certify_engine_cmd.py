"""``specoracle certify-engine ENGINE``: certify a whole decoding engine (specoracle's own,
transformers' generate, vLLM) as a black box against the target model's exact law.
See docs/CERTIFICATION.md, "Engines"."""
from __future__ import annotations

import shlex
import sys

from specoracle.cli import _args

EPILOG = """examples:
  specoracle certify-engine transformers --target zoo:code-target --draft zoo:code-draft \\
      --method assisted --temperature 1 --top-k 8 --n 3
  specoracle certify-engine transformers --target zoo:code-target --method prompt-lookup \\
      --temperature 1 --top-p 0.8 --n 2 --json hf-pld.json
  specoracle certify-engine specoracle --target zoo:code-target --draft zoo:code-draft \\
      --method block --temperature 1 --top-k 8 --batch 4 --prompt "def " --prompt "import "
  specoracle certify-engine transformers --target zoo:code-target --draft zoo:code-draft \\
      --method assisted --temperature 0 --n 16 --baseline     # token identity with plain generate
  specoracle certify-engine vllm --target zoo:code-target --draft zoo:code-draft \\
      --method draft_model --temperature 1 --top-k 8 --batch 4
  specoracle certify-engine vllm --target zoo:code-target --method dflash --k 15 \\
      --temperature 0 --n 32 --baseline     # vLLM's DFlash proposer, the shipped drafter
  specoracle certify-engine specoracle --target zoo:code-target --draft zoo:code-draft \\
      --temperature 1 --top-k 8 --batch 4 --executor ray --actors 2   # one engine per Ray actor

T = 0: every token must equal the target's greedy continuation (and, with --baseline, the same
engine with method "none"). T > 0: per prompt, the law of the first --n tokens against the
target's exact law (support enumerated; coarsened exactly when it is too large), chi-square
with alpha split by Holm across prompts; --samples defaults to the smallest number of requests
per prompt that detects --tv at power 0.9.
methods: specoracle chain|block|greedy|none; transformers assisted|prompt-lookup|none;
vllm draft_model|ngram|suffix|dflash|none (dflash: --draft is a DFlash drafter folder, default
the shipped one, exported for vLLM on the fly; --k <= block - 1; --option patch_expand=1 replaces
vLLM's faulty CPU expand_kernel, for fault localisation).
exit status: 0 exact, 1 not exact, 2 underpowered, bad input or not available.
"""

ENGINE_NAMES = ("specoracle", "transformers", "vllm")   # = specoracle.proofs.certify.engines.ENGINES (tested)
DEFAULT_METHOD = {"specoracle": "chain", "transformers": "assisted", "vllm": "draft_model"}
DEFAULT_PROMPTS = ("def ", "import ")


HELP = "certify a whole engine (specoracle, transformers, vllm) end to end"
DESCRIPTION = ("Black-box certification of a speculative decoding engine: token identity at T = "
               "0, the law of the first n generated tokens against the target's exact law at T > "
               "0, at batch 1 or several different requests per batch; stated alpha and power.")


def add_parser(subparsers) -> None:
    p = _args.command(subparsers, "certify-engine", HELP, DESCRIPTION, EPILOG)
    p.add_argument("engine", choices=ENGINE_NAMES, metavar="ENGINE", help=" | ".join(ENGINE_NAMES))
    p.add_argument("--target", required=True, help="zoo:NAME or a local Hugging Face folder (p)")
    p.add_argument("--draft", default=None, help="zoo:NAME or a local folder (q), for draft-model methods "
                   "(vllm dflash: a DFlash drafter folder, default the shipped one)")
    p.add_argument("--method", default=None, help="the engine's speculation method (default: chain / "
                   "assisted / draft_model); 'none' = no speculation")
    p.add_argument("--k", type=_args.positive_int, default=4, help="drafted tokens per round (default 4)")
    p.add_argument("--temperature", type=_args.nonneg_float, default=1.0, help="0 = greedy (default 1)")
    p.add_argument("--top-k", type=_args.positive_int, default=None)
    p.add_argument("--top-p", type=_args.unit_open_closed, default=None)
    p.add_argument("--n", type=_args.positive_int, default=3, help="generated tokens whose joint law is checked (default 3)")
    p.add_argument("--batch", type=_args.positive_int, default=1, help="requests per engine call (default 1)")
    p.add_argument("--prompt", action="append", default=None,
                   help=f"prompt text, repeatable (default: {', '.join(repr(s) for s in DEFAULT_PROMPTS)})")
    p.add_argument("--samples", type=_args.positive_int, default=None,
                   help="requests per prompt (default: the smallest number reaching the stated power; "
                        "2 at T = 0)")
    p.add_argument("--alpha", type=_args.unit_open, default=1e-3, help="false-positive budget of the run (default 1e-3)")
    p.add_argument("--power", type=_args.unit_open, default=0.9, help="stated power (default 0.9)")
    p.add_argument("--tv", type=_args.unit_open_closed, default=0.1, help="TV distance to detect at that power (default 0.1)")
    p.add_argument("--seed", type=_args.seed, default=0, help="seed of the run (default 0)")
    p.add_argument("--baseline", action="store_true",
                   help="also run the same engine with method 'none' (T = 0: token identity; T > 0: "
                        "its law is checked too, to tell sampling bugs from speculation bugs)")
    p.add_argument("--min-prob", type=_args.float_in(0, 1, low_open=False, high_open=True), default=None,
                   help="coarsen the law: pool sequences below this probability (default: exact support "
                        "when enumerable, else 1e-3)")
    p.add_argument("--threads", type=_args.positive_int, default=1, help="torch CPU threads while the engine runs (default 1)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="extra engine keyword (repeatable), e.g. --option backend=reference")
    g = p.add_argument_group("at scale (Ray is optional: pip install \"specoracle[ray]\")")
    g.add_argument("--executor", default="inprocess",
                   help="inprocess (default) | ray (local Ray started here) | ray://HOST:PORT | auto: requests "
                        "sharded over --actors actors, one engine each; same counts as in-process")
    g.add_argument("--actors", type=_args.positive_int, default=2, help="Ray actors, one engine each (default 2)")
    _args.add_json(p, "write the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, check=check)


def check(args) -> None:
    """Cross-option checks before any heavy work (the values are checked by argparse)."""
    for opt in args.option:
        if "=" not in opt:
            raise _args.UsageError("--option", f"expected KEY=VALUE, got {opt!r}")
    from .certify_sweep import check_executor
    if bad := check_executor(args.executor):
        flag, _, reason = bad.partition(": ")
        raise _args.UsageError(flag, reason)


def _options(args) -> dict:
    out = {}
    for opt in args.option:
        key, _, val = opt.partition("=")
        for conv in (int, float):
            try:
                val = conv(val)
                break
            except ValueError:
                continue
        out[key.strip().replace("-", "_")] = val
    return out


def reproduce_line(args, method: str, samples: int) -> str:
    """The command line that reproduces this run (explicit settings)."""
    parts = ["specoracle", "certify-engine", args.engine, "--target", args.target]
    if args.draft:
        parts += ["--draft", args.draft]
    parts += ["--method", method, "--k", str(args.k), "--temperature", f"{args.temperature:g}"]
    if args.top_k is not None:
        parts += ["--top-k", str(args.top_k)]
    if args.top_p is not None:
        parts += ["--top-p", f"{args.top_p:g}"]
    parts += ["--n", str(args.n), "--batch", str(args.batch)]
    for pr in args.prompt or DEFAULT_PROMPTS:
        parts += ["--prompt", pr]
    parts += ["--samples", str(samples), "--alpha", f"{args.alpha:g}", "--tv", f"{args.tv:g}",
              "--seed", str(args.seed)]
    if args.baseline:
        parts.append("--baseline")
    if args.min_prob is not None:
        parts += ["--min-prob", f"{args.min_prob:g}"]
    for opt in args.option:
        parts += ["--option", opt]
    if args.executor not in ("inprocess", "in-process", "local"):
        parts += ["--executor", args.executor, "--actors", str(args.actors)]
    return " ".join(_quote(a) for a in parts)


def _quote(arg: str) -> str:
    """Shell quoting on one line: an argument with newlines becomes bash's $'...'."""
    if "\n" in arg:
        return "$'" + arg.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
    return shlex.quote(arg)


def run(args) -> int:
    from specoracle.cli._report import finish
    from specoracle.proofs.certify.engines import EngineFactory, EngineUnavailable, get_engine
    from specoracle.reference.types import InvalidInput

    method = args.method or DEFAULT_METHOD[args.engine]
    kw = dict(target=args.target, draft=args.draft, method=method, k=args.k, threads=args.threads, **_options(args))
    engines = []
    try:
        import torch
        from specoracle.fastpath.models.llm.hf import load_model, load_tokenizer

        from specoracle.proofs.certify.executors import parse_executor
        if parse_executor(args.executor)[0] == "inprocess":
            engines.append(get_engine(args.engine, **kw))  # first: a missing extra is reported at once
            if args.baseline:
                engines.append(get_engine(args.engine, **{**kw, "method": "none"}))
            use = engines
        else:  # built on the actors, one engine each (the CLI builds none here)
            factory = EngineFactory(args.engine, **kw)
            use = [factory, factory.replace(method="none")] if args.baseline else [factory]
        tok = load_tokenizer(args.target)
        prompts = []
        for text in args.prompt or DEFAULT_PROMPTS:
            ids = tok(text).input_ids if text else []
            prompts.append(ids or [tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id])
        target = load_model(args.target)[0]
        threads = torch.get_num_threads()
        torch.set_num_threads(args.threads)
        try:
            from specoracle.proofs.certify.engines.certify import certify_engine
            report = certify_engine(use[0], target, prompts, n=args.n, temperature=args.temperature,
                                    top_k=args.top_k, top_p=args.top_p, samples=args.samples, batch=args.batch,
                                    alpha=args.alpha, power=args.power, tv=args.tv, seed=args.seed,
                                    progress=not args.no_progress and sys.stderr.isatty(),
                                    baseline=use[1] if args.baseline else None, min_prob=args.min_prob,
                                    executor=args.executor, actors=args.actors)
        finally:
            torch.set_num_threads(threads)
    except InvalidInput as exc:
        flag = {"model": "--target", "draft": "--draft", "method": "--method", "k": "--k",
                "top_k": "--top-k", "top_p": "--top-p"}.get(exc.argument, exc.argument)
        raise _args.UsageError(flag, exc.reason) from None
    except (EngineUnavailable, ImportError) as exc:
        print(f"{args.engine}: not available: {exc}", file=sys.stderr)
        return 2
    except ConnectionError as exc:
        raise _args.UsageError("--executor", f"cannot connect: {exc}") from None
    finally:
        for e in engines:
            e.close()
    report.reproduce = reproduce_line(args, method, report.settings["samples_per_prompt"])
    return finish(report, args.json)
