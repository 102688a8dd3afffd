"""The tiny tokenizer the project trains once and ships, and tokenizer loading.

It is a byte-level BPE of a few thousand tokens with the chat special tokens and the chat template
in `assets/chat_template.jinja`, so tests and the CPU default need no model hub. Regenerate with
`python -m srl_agent.tokenizer` (deterministic: it trains on the Python standard library's source
and the tool schemas).
"""

from __future__ import annotations

import sys
import sysconfig
from functools import cache
from pathlib import Path

from .paths import ASSETS_DIR, project_dir

TINY_TOKENIZER = "tiny"
TINY_TOKENIZER_DIR = ASSETS_DIR / "tiny-tokenizer"
CHAT_TEMPLATE_PATH = ASSETS_DIR / "chat_template.jinja"
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>",
                  "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
VOCAB_SIZE = 4096


@cache
def load_tokenizer(name_or_path: str = TINY_TOKENIZER):
    """A transformers tokenizer: `tiny` (shipped), a local folder, or a hub id."""
    from transformers import AutoTokenizer

    path = str(TINY_TOKENIZER_DIR) if name_or_path == TINY_TOKENIZER else name_or_path
    return AutoTokenizer.from_pretrained(path)


def _training_corpus(max_bytes: int = 12_000_000) -> list[str]:
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
    texts += [p.read_text() for p in sorted(project_dir("tools").rglob("schema.json"))]
    return texts


def train_tiny_tokenizer(out_dir: Path = TINY_TOKENIZER_DIR, vocab_size: int = VOCAB_SIZE) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
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
