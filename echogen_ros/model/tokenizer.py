"""Tokenizers: a word-level one built from the world's vocabulary, or an existing one extended.

Either way the scheme's special tokens and box bins are added as special tokens, bins consecutively,
so `TokenScheme` can address them as one id range.
"""

from __future__ import annotations

from tokenizers import Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel

from echogen_ros.domain.vocabulary import vocabulary
from echogen_ros.model.scheme import SPECIAL_TOKENS, UNK, TokenScheme, bin_token


def build_word_tokenizer(bins: int, words: list[str] | None = None) -> Tokenizer:
    """Word-level tokenizer: special tokens, then bins, then the world's words (lower-cased)."""
    tokens = list(SPECIAL_TOKENS) + [bin_token(k) for k in range(bins)] + sorted(set(words or vocabulary()))
    tokenizer = Tokenizer(WordLevel({t: i for i, t in enumerate(tokens)}, unk_token=UNK))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer.add_special_tokens(tokens[: len(SPECIAL_TOKENS) + bins])
    return tokenizer


def extend_tokenizer(tokenizer: Tokenizer, bins: int) -> Tokenizer:
    """Add the scheme's tokens to an existing (e.g. Janus-Pro) tokenizer; existing ids stay."""
    missing = [t for t in SPECIAL_TOKENS if tokenizer.token_to_id(t) is None]
    tokenizer.add_special_tokens(missing)
    if tokenizer.token_to_id(bin_token(0)) is None:
        tokenizer.add_special_tokens([bin_token(k) for k in range(bins)])
    return tokenizer


def token_scheme(
    tokenizer: Tokenizer, bins: int, image_tokens: int, generation_tokens: int | None = None
) -> TokenScheme:
    """The scheme's ids inside `tokenizer`; checks that the bins are one contiguous range. `generation_tokens`
    (the VQ grid's codes) defaults to `image_tokens` (the vision grid's patches), as in Janus."""
    special = {}
    for name in SPECIAL_TOKENS:
        token_id = tokenizer.token_to_id(name)
        if token_id is None:
            raise ValueError(f"tokenizer lacks the special token {name}; was it built by echogen_ros?")
        special[name] = token_id
    offset = tokenizer.token_to_id(bin_token(0))
    ids = [tokenizer.token_to_id(bin_token(k)) for k in range(bins)]
    if offset is None or ids != list(range(offset, offset + bins)):
        raise ValueError(f"tokenizer's {bins} box-bin tokens are missing or not contiguous")
    return TokenScheme(
        bins=bins,
        bin_offset=offset,
        special=special,
        image_tokens=image_tokens,
        generation_tokens=generation_tokens or image_tokens,
    )


def encode_text(tokenizer: Tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False).ids
