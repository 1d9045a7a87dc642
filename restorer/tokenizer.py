"""An offline tokenizer for restoration instructions, built in code (nothing is downloaded).

Words the instruction builder and typical user requests use get one token each; any other word is
spelled out with character tokens, so no free text is ever lost to ``<unk>``. The vocabulary is a pure
function of the constants below; ``VOCAB_VERSION`` is saved in every restorer config so a checkpoint
cannot be paired with a tokenizer whose ids mean something else.
"""

from __future__ import annotations

import re

import torch

VOCAB_VERSION = 1

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eow>")
CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"-+/()%&"
WORDS = (
    # the instruction builder's vocabulary (restorer.degradations.instruction_text)
    "no blur slight moderate strong severe directional downsampled not noise noisy slightly very light heavy "
    "jpeg restore the face keep identity x "
    # common requests a user may add
    "a an and or of to in on with without more less much too very sharp sharper sharpen sharpness smooth "
    "smoother soft softer natural realistic detail details detailed texture skin eyes eye mouth lips teeth "
    "nose hair beard glasses face faces identity expression color colour colors bright brighter dark darker "
    "contrast clean denoise deblur remove artifacts artifact blocky blocks compression old photo photograph "
    "do don't dont please make it look like same original person young older age background keep preserve "
    "subtle strongly faithful fidelity quality high low best better good"
).split()
NUMBERS = tuple(str(n) for n in range(0, 41))


def _build_vocabulary() -> dict[str, int]:
    tokens: list[str] = list(SPECIAL_TOKENS)
    tokens += [f"#{c}" for c in CHARACTERS]
    for word in (*WORDS, *NUMBERS):
        if word not in tokens:
            tokens.append(word)
    return {token: index for index, token in enumerate(tokens)}


_PIECES = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+|[^\sa-z\d]")


class InstructionTokenizer:
    """Lower-cases, splits into words / numbers / punctuation, maps each to ids (char fallback)."""

    def __init__(self) -> None:
        self.vocab = _build_vocabulary()
        self.pad_id = self.vocab["<pad>"]
        self.unk_id = self.vocab["<unk>"]
        self.bos_id = self.vocab["<bos>"]
        self.end_of_word_id = self.vocab["<eow>"]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        ids = [self.bos_id]
        for piece in _PIECES.findall(text.lower()):
            if piece in self.vocab:
                ids.append(self.vocab[piece])
                continue
            ids.extend(self.vocab.get(f"#{c}", self.unk_id) for c in piece)
            if piece[0].isalnum():  # a spelled-out word ends; punctuation is one character already
                ids.append(self.end_of_word_id)
        return ids

    def batch_encode(self, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ``ids`` and ``attention_mask`` ``[B, max_length]``; longer texts are truncated."""
        ids = torch.full((len(texts), max_length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(texts), max_length), dtype=torch.long)
        for row, text in enumerate(texts):
            encoded = self.encode(text)[:max_length]
            ids[row, : len(encoded)] = torch.tensor(encoded, dtype=torch.long)
            mask[row, : len(encoded)] = 1
        return ids, mask
