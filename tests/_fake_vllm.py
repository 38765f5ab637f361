"""A fake vLLM backend for the worker-protocol tests (no vLLM needed).

``FakeBackend(**engine)`` "generates" token ``(seed + prompt[-1] + j) % 97`` at position j,
stops early at token 0 unless ``ignore_eos`` (like EOS), and prints to stdout while it
starts, as vLLM's logging does, to check that the protocol channel stays clean.
``fail_on_start`` / ``fail_on_generate`` make it raise. ``metrics()`` counts one "draft" of k
tokens per generated token after the first, with every draft token accepted.
"""
from __future__ import annotations


class FakeBackend:
    name = "vllm"
    version = "fake-0"
    eos_id = 0

    def __init__(self, target, draft=None, method="none", k=1, fail_on_start=False, fail_on_generate=False,
                 **kw):
        print("INFO fake engine starting (stdout noise)", flush=True)
        if fail_on_start:
            raise RuntimeError("fake start failure")
        self.method = method
        self.k = int(k)
        self.fail_on_generate = fail_on_generate
        self.calls = 0
        self.counts = {"drafts": 0, "draft_tokens": 0, "accepted": 0}

    def metrics(self):
        return dict(self.counts)

    def generate(self, prompts, n, seeds, temperature, top_k=None, top_p=None, ignore_eos=False):
        print("INFO fake generate (stdout noise)", flush=True)
        if self.fail_on_generate:
            raise ValueError("fake generate failure")
        self.calls += 1
        out = []
        for p, s in zip(prompts, seeds):
            toks = []
            for j in range(n):
                t = (s + p[-1] + j) % 97
                toks.append(t)
                if t == 0 and not ignore_eos:
                    break
            out.append(toks)
            steps = max(len(toks) - 1, 0)
            self.counts["drafts"] += steps
            self.counts["draft_tokens"] += steps * self.k
            self.counts["accepted"] += steps * self.k
        return out
