"""Loading transformers checkpoints with errors a user can act on."""

from __future__ import annotations

from pathlib import Path

from .errors import UserError


def _looks_like_a_path(source: str) -> bool:
    # hub ids are NAME or OWNER/NAME; anything else that names no folder is a mistyped path
    return source.startswith(("/", ".", "~")) or source.count("/") > 1


def from_pretrained(auto_class, source: str, **kwargs):
    """`auto_class.from_pretrained(source)`, or a clear error when `source` is neither a checkpoint folder
    nor a hub id that can be reached, or holds something transformers cannot load."""
    from huggingface_hub.errors import HFValidationError

    if _looks_like_a_path(source) and not Path(source).expanduser().exists():
        raise UserError(f"{source}: no such checkpoint folder")
    try:
        return auto_class.from_pretrained(str(Path(source).expanduser()) if source.startswith("~") else source,
                                          **kwargs)
    except (OSError, ValueError) as e:  # HFValidationError (a bad id) is a ValueError
        text = str(e).strip()
        not_found = isinstance(e, OSError | HFValidationError) or "Unrecognized" in text
        hint = "; give a checkpoint folder or a hub id this machine can reach" if not_found else ""
        raise UserError(f"{source}: cannot load it as a {auto_class.__name__.removeprefix('Auto')} "
                        f"({text.splitlines()[0] if text else type(e).__name__}){hint}") from None
