"""Peak memory of the update's log-probs: full-vocabulary logits (the path before) against the chunked
head (train/logprobs.py), forward and backward of the summed log-probs of one micro-batch.

The shape: a Qwen2 model with Qwen2.5's vocabulary (151,936) but a narrow body (hidden 256, 2 layers,
so it runs on a CPU), 8 sequences of T tokens, every position a completion token (the worst case: an
SRL prompt's positions cost the chunked path nothing). Each case runs in a fresh process; the figure
is its peak resident memory above what it held before the forward pass.
Run: python benchmarks/logprob_memory.py [--tokens 256 512 4096] [--old-max 512] [--smoke]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys

from _common import arg_parser, machine

VOCAB, HIDDEN, ROWS = 151_936, 256, 8


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def run_case(path: str, tokens: int) -> float:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from srl_agent.policy.hf import token_logprobs
    from srl_agent.train.batching import make_batch
    from srl_agent.train.logprobs import install_logprob_forward

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    model = Qwen2ForCausalLM(config)
    install_logprob_forward(model)
    ids = torch.randint(0, VOCAB, (ROWS, tokens))
    batch = make_batch([([int(row[0])], row[1:].tolist()) for row in ids], 0, "cpu", "padded")
    start = rss_mb()
    if path == "full":
        logits = model(input_ids=batch.ids, attention_mask=batch.attention_mask).logits[:, :-1]
        logp = token_logprobs(logits, batch.ids[:, 1:]) * batch.target_mask
    else:
        logp = batch.token_logprobs(model) * batch.target_mask
    logp.sum().backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak - start


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--tokens", type=int, nargs="+", default=[256, 512, 4096])
    parser.add_argument("--old-max", type=int, default=512, help="longest T for the full-logits path (its memory "
                                                                  "grows by ~2.4 GB per 100 tokens here)")
    parser.add_argument("--case", nargs=2, metavar=("PATH", "TOKENS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(run_case(args.case[0], int(args.case[1])))
        return
    if args.smoke:  # both paths, one short T
        args.tokens = [16]
    print(f"machine: {machine()}")
    print(f"vocab {VOCAB:,}, hidden {HIDDEN}, 2 layers, {ROWS} x T tokens, forward + backward of the log-probs\n")
    print(f"{'T':>6} {'full logits MB':>15} {'chunked MB':>11} {'ratio':>7}")
    for tokens in args.tokens:
        peaks = {}
        for path in ("full", "chunked"):
            if path == "full" and tokens > args.old_max:
                continue
            out = subprocess.run([sys.executable, __file__, "--case", path, str(tokens)], capture_output=True,
                                 text=True, check=True)
            peaks[path] = float(out.stdout.strip().splitlines()[-1])
        full = f"{peaks['full']:15,.0f}" if "full" in peaks else f"{'-':>15}"
        ratio = f"{peaks['full'] / peaks['chunked']:6.1f}x" if "full" in peaks else f"{'-':>7}"
        print(f"{tokens:>6} {full} {peaks['chunked']:11,.0f} {ratio}")


if __name__ == "__main__":
    sys.exit(main())
