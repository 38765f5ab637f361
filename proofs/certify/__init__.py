"""Black-box certification of any speculative sampler against the exact laws of the
battery in :mod:`specoracle.proofs.certify.scenarios` (DESIGN.md principle 5).

``certify(impl, *, samples=None, alpha=1e-3, power=0.9, target_tv=0.05, seed=0,
progress=False, stop_early=True) -> Report``

What is checked (ALGORITHMS.md §7 testing protocol, with stated error rates):
  * for every scenario of the impl's protocol, the JOINT law of the emitted block
    (completed to a fixed length by target sampling) against the target's law;
  * when the impl declares its algorithm (``law="chain"`` or ``"block"``), the law of
    (tau, emitted tokens) - i.e. the law conditional on the accepted length - the law of
    tau (multinomial), and P(tau >= 1) (exact binomial), against closed forms;
  * multi-round requests ("probs" protocol, scenario ``rounds``): each request runs R
    consecutive rounds with its own generator and continues after its last emitted
    token; the first tokens of the request must follow the target chain and (declared
    law) the joint law of (tau_1..tau_R) the product of the exact per-round laws along
    the request: noise reused across rounds (a stale buffer, an RNG keyed on the position
    in the block) is invisible to one-round checks and shows here;
  * continuous samplers: Anderson-Darling / KS on whitened 1-D projections, an energy
    test in d dims, exact binomial acceptance;
  * where the impl exposes a noise-injected ``core``: a coupled check, decision by
    decision against the oracle under the same noise (agreement rate, first disagreement).

Error rates: the false-positive budget ``alpha`` is split over the m checks of the run
by Holm's step-down (family-wise error <= alpha for any dependence between checks;
the coupled checks are deterministic and take no share). Categorical checks use a
simulated (Monte-Carlo, Besag-Clifford) null, valid at the small per-check levels where
the chi-square approximation over-rejects (proofs/stats.py). Power: each calibrated
check must detect ``target_tv`` (TV for categorical laws, KS distance for continuous
projections, |p - p0| for binomials) with probability >= ``power`` at the Bonferroni
level alpha/m (Holm rejects at least whatever Bonferroni rejects). ``samples=None``
picks, per scenario, the smallest n that achieves this; a smaller ``samples`` makes the
run ``underpowered`` (unless a check already rejects, which is valid evidence anyway).
The report states the smallest effect each check (and the whole run) could see.
``stop_early``: once a check's p-value is <= alpha/(10 m) (a rejection no later check can
undo: Holm's first step rejects it at alpha/m, with a margin of 10), the remaining
scenarios are skipped and the report says so.

Names: ``reference.*``, ``mutant.*``, adapters (``transformers.speculative_sampling``,
``flashinfer.chain_speculative_sampling``, ``vllm.v1.rejection_sampler``), fast paths
(``numba.*``, ``torch.*``, discovered lazily), or ``module:function`` (adapter
protocol below). Register more with :func:`register_impl`.

Adapter protocols (``Impl.protocol``); every call gets a ``numpy.random.Generator``:
  "probs"          fn(p [K+1, V], q [K, V], draft [K], rng) -> emitted tokens
  "logits"         fn(target_logits [K+1, V], draft_logits [K, V], draft [K], rng,
                      temperature, top_p, *, top_k=..., min_p=...) -> emitted tokens
                      (top_k / min_p are passed only by scenarios that use them; an
                      fn without those keywords skips those scenarios, with a note)
  "mss"            fn(p [V], q [k, V], children [k], rng) -> Verdict (n_accepted 0/1)
  "kseq"           fn(p [V], q [V], candidates [k], rng) -> Verdict
  "tree"           fn(p [N+1, V], tokens [N], parents [N], rng) -> emitted tokens
  "gauss_step"     fn(m_p [d], m_q [d], s, z [d], rng) -> GaussianStep or (y [d], accepted)
  "gauss_residual" fn(m_p [d], m_q [d], s, c, rng) -> y [d]
  "gauss_block"    fn(m_p [L+1, d], m_q [L, d], s [L+1], z [L, d], rng) -> states [tau+1, d]
  "batch"          fn(target_probs [N+B, V], draft_probs [N, V], draft_token_ids [N],
                      cu_num_draft_tokens [B], temperature [B], generators [B]) -> ids [B, max K+1]
                   (B ragged requests, vLLM V1 layout; checked by :mod:`specoracle.proofs.certify.batch`)
Inputs: probability rows are float64 C-contiguous arrays that sum to 1 and CONTAIN EXACT
ZEROS (tokens of probability 0: take logs with care, log 0 = -inf); logits are float64
(-inf never occurs; rows carry arbitrary per-row offsets, as a model's logits do); draft
ids, children, candidates, tree tokens and parents are int64; ``rng`` is a
``numpy.random.Generator`` (single-round scenarios share one for the scenario; in the
``rounds`` scenario every request has its own, passed to each of its rounds).
Outputs: "emitted tokens" may be a Verdict, a 1-D sequence of integer ids, or
``(ids, n_accepted)`` (for "batch": see :mod:`specoracle.proofs.certify.batch`).
``n_accepted`` (tau) is the number of ACCEPTED DRAFT tokens, 0..K; the emitted block is those tau draft tokens followed by ONE corrected or bonus
token, so ``len(ids) == n_accepted + 1`` (1..K+1 ids, each in [0, V), no padding).
Without ``n_accepted``, tau = len(ids) - 1. An output that breaks these rules (a float
dtype, -1 padding, n_accepted counting the bonus token, a wrong length, an id out of
range) stops the run with the verdict ``format error: <scenario>: <problem>``.
A ``module:function`` target may set attributes ``specoracle_protocol`` (default
"probs") and ``specoracle_law`` ("chain", "block"; default None: the algorithm-agnostic
checks only, and the report says so); a misspelt attribute or an unknown value is an
``InvalidInput`` error.

Modules (the import order, lowest first; no module imports one to its right):
  scenarios.py   the battery: scenarios with their exact laws
  impl.py        the protocols, :class:`Impl`, adapter attributes, output normalisation
  adapters.py, mutants.py, mutants_batch.py, vllm_v1.py   built-in samplers (Impl factories)
  decision.py    planning (checks, sample sizes), goodness of fit, Holm, the verdict
  batch.py       the "batch" protocol (B ragged requests per call)
  registry.py    the built-in names (register_impl, list_impls, resolve_impl)
  sampling.py    running a scenario: outputs reduced to cells / whitened coordinates
  core.py        :func:`certify` and :func:`coupled_check`
  executors.py, sweep/, engines/, lossless.py   sweeps over many workers, engine-level
                 certification, the end-to-end prefix law of a real model pair
"""
from .core import COUPLED_CASES, DECISIVE, PROGRESS_INTERVAL, certify, coupled_check  # noqa: F401
from .decision import (DEFAULT_ALPHA, DEFAULT_POWER, DEFAULT_TARGET_TV, GOF_NULL, NOT_CALIBRATED,  # noqa: F401
                       CheckRow, Report, check_run_args)
from .impl import (ADAPTER_ATTRIBUTES, DEFAULT_SCENARIOS, LAWS, PROTOCOLS, Impl,  # noqa: F401
                   OutputFormatError, adapter_attributes, first_sentence)
from .registry import list_impls, register_impl, resolve_impl  # noqa: F401
from .sampling import ENERGY_MAX_N  # noqa: F401
