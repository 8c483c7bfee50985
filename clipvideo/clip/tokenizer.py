"""CLIP's byte-pair-encoding tokenizer, using the vocabulary file that open_clip ships.

Nothing is downloaded. Over-long prompts raise unless `truncate=True`, in which case the end
token is kept as the last token (so pooling at the end-of-text position still works).
"""

from collections.abc import Sequence
from functools import lru_cache

import torch

START_OF_TEXT = 49406
END_OF_TEXT = 49407


@lru_cache(maxsize=1)
def _bpe():
    from open_clip.tokenizer import SimpleTokenizer  # deferred: importing open_clip takes ~1 s

    return SimpleTokenizer()


def encode(text: str) -> list[int]:
    """BPE ids of one string without start/end tokens (ftfy fix, HTML unescape, lower case)."""
    return _bpe().encode(text)


def tokenize(texts: str | Sequence[str], context_length: int = 77, truncate: bool = False) -> torch.Tensor:
    """Strings -> (K, context_length) int64 ids: start, BPE ids, end, zero padding."""
    if isinstance(texts, str):
        texts = [texts]
    result = torch.zeros(len(texts), context_length, dtype=torch.long)
    for row, text in enumerate(texts):
        ids = [START_OF_TEXT, *encode(text), END_OF_TEXT]
        if len(ids) > context_length:
            if not truncate:
                raise ValueError(
                    f"text {text!r} is {len(ids)} tokens long, more than the context length "
                    f"{context_length}; shorten it or pass truncate=True"
                )
            ids = ids[: context_length - 1] + [END_OF_TEXT]
        result[row, : len(ids)] = torch.tensor(ids)
    return result
