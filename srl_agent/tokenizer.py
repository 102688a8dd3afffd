"""The tiny tokenizer the project trains once and ships, and tokenizer loading.

It is a byte-level BPE of a few thousand tokens with the chat special tokens and the chat template
in `assets/chat_template.jinja`, so tests and the CPU default need no model hub. Regenerate with
`python -m srl_agent.tokenizer` (deterministic: it trains on the Python standard library's source
and the tool schemas).
"""

from __future__ import annotations

import json
import sys
import sysconfig
from functools import cache
from pathlib import Path

from .chat import CHAT_TEMPLATE_PATH, SYSTEM_PROMPT
from .paths import ASSETS_DIR, project_dir

TINY_TOKENIZER = "tiny"
TINY_TOKENIZER_DIR = ASSETS_DIR / "tiny-tokenizer"
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>",
                  "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
VOCAB_SIZE = 4096
QWEN2_PRETOKENIZE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                     r"\s*[\r\n]+|\s+(?!\S)|\s+")


@cache
def load_tokenizer(name_or_path: str = TINY_TOKENIZER):
    """A transformers tokenizer: `tiny` (shipped), a local folder, or a hub id."""
    from transformers import AutoTokenizer

    from .pretrained import from_pretrained

    path = str(TINY_TOKENIZER_DIR) if name_or_path == TINY_TOKENIZER else name_or_path
    return from_pretrained(AutoTokenizer, path)  # a bad path or unreachable id: one clear line


def stdlib_source(max_bytes: int = 12_000_000) -> list[str]:
    """The standard library's Python source, file by file (tests and site-packages left out), up to `max_bytes`."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts, total = [], 0
    for path in sorted(stdlib.rglob("*.py")):
        if "test" in path.parts or "site-packages" in path.parts:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        texts.append(text)
        total += len(text)
        if total > max_bytes:
            break
    return texts


def _training_corpus() -> list[str]:
    texts = stdlib_source()
    # What every agent prompt repeats (the system turn, the tool schemas as the chat template writes
    # them, the answer format) and the seed trajectories: BPE merges then cover whole phrases, which
    # keeps the tiny model's prompts short.
    from .actions import render_completion
    from .tools import load_tools
    from .types import ToolCall

    schemas = [json.dumps(spec.openai_schema(), ensure_ascii=False) for spec in load_tools().values()]
    template = CHAT_TEMPLATE_PATH.read_text()
    answer = render_completion("Let me look at the repository.", ToolCall("bash", {"command": "ls"}))
    texts += [SYSTEM_PROMPT, template, answer, *schemas] * 200
    seed = project_dir("trajectories") / "seed.jsonl"
    if seed.exists():
        texts.append(seed.read_text())
    return texts


def train_tiny_tokenizer(out_dir: Path = TINY_TOKENIZER_DIR, vocab_size: int = VOCAB_SIZE) -> None:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    # Qwen2's exact pipeline: a checkpoint of a Qwen2 model loads its tokenizer as Qwen2Tokenizer,
    # which rebuilds this pipeline around our vocabulary; any other would tokenize differently.
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_training_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None, unk_token=None, model_max_length=32768)
    fast.chat_template = CHAT_TEMPLATE_PATH.read_text()
    fast.save_pretrained(out_dir)


if __name__ == "__main__":
    train_tiny_tokenizer(Path(sys.argv[1]) if len(sys.argv) > 1 else TINY_TOKENIZER_DIR)
    print(f"wrote {TINY_TOKENIZER_DIR if len(sys.argv) < 2 else sys.argv[1]}")
