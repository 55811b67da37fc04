"""The batched per-token mixture of LoRA experts, against the base model and a loop over experts.

    .venv/bin/python benchmarks/token_mixture.py [--experts 12] [--texts 512] [--repeats 3]

Builds --experts random rank-8 LoRA experts (query and value) on all-MiniLM-L6-v2, then, in
one run and alternating, embeds the same --texts sentences:
  * with the base model alone (the floor);
  * with `token_mixture`: every token of every module mixes its top-2 experts by Arrow
    routing, all experts and tokens in one batched pass (what `moerge bench` runs);
  * with every expert separately through PEFT, one pass per expert (what a per-expert loop
    costs before any mixing).
It prints the best time per 1,000 inputs of each and the ratios.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = [
    *("the", "a", "river", "court", "engine", "poem", "law", "star", "bread", "music"),
    *("king", "ship", "storm", "field", "war", "code", "winter", "market", "garden"),
    *("language", "number", "bird", "tree", "city", "glass"),
]


def sentences(n: int) -> list[str]:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(6, 30, (n,), generator=g)
    picks = torch.randint(0, len(WORDS), (n, 30), generator=g)
    return [" ".join(WORDS[int(i)] for i in picks[k, : int(lengths[k])]) for k in range(n)]


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> int:
    from moerge.experts.adapters import create_lora
    from moerge.experts.mixture import ExpertStack, MixtureModel
    from moerge.experts.runtime import ExpertSet
    from moerge.models import default_base_model_path
    from moerge.routing import TokenRouterConfig
    from moerge.routing.arrow import ArrowRouter
    from moerge.stats.arrow import arrow_prototypes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experts", type=int, default=12)
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    base = default_base_model_path()
    texts = sentences(args.texts)
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [
            create_lora(base, Path(tmp) / f"e{i}", name=f"e{i}", rank=8, seed=i)
            for i in range(args.experts)
        ]
        refs = [f"e{i}:1" for i in range(args.experts)]
        stack = ExpertStack.from_dirs(refs, dirs)
        router = ArrowRouter(TokenRouterConfig(top_k=2))
        router.fit(refs, [arrow_prototypes(d)[0] for d in dirs])
        mixture = MixtureModel(base)
        experts = ExpertSet(
            base, dict(zip(refs, dirs, strict=True)).__getitem__, capacity=len(refs)
        )
        for ref in refs:  # load every adapter before timing
            experts.embed(texts[:2], ref)

        def loop() -> None:
            for ref in refs:
                experts.embed(texts, ref)

        runs: dict[str, list[float]] = {"base": [], "token_mixture": [], "loop": []}
        for _ in range(args.repeats):  # alternating, so that drift hits all three alike
            runs["base"].append(timed(lambda: mixture.embed(texts)))
            runs["token_mixture"].append(
                timed(lambda: mixture.embed_gated(texts, stack, router.gate))
            )
            runs["loop"].append(timed(loop))
    results = {k: min(v) for k, v in runs.items()}
    per_1000 = {k: 1000 * v / len(texts) for k, v in results.items()}
    threads = torch.get_num_threads()
    print(f"{args.texts} texts, {args.experts} experts, best of {args.repeats}, {threads} threads")
    print(f"  base model alone:              {per_1000['base']:8.2f} s / 1000 inputs")
    print(f"  token_mixture (top-2, Arrow):  {per_1000['token_mixture']:8.2f} s / 1000 inputs")
    print(f"  every expert, one pass each:   {per_1000['loop']:8.2f} s / 1000 inputs")
    print(f"  token_mixture / base:          {results['token_mixture'] / results['base']:8.2f}")
    print(f"  loop over experts / mixture:   {results['loop'] / results['token_mixture']:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
