"""Why ``seedscope run``: a vocabulary built from a set of strings.

The script gives each distinct word of a text an id, in the order a ``set``
yields them, draws an embedding for each id inside ``deterministic(0)``, and
prints the ids of a sentence and a digest of the embeddings. Every random
draw is seeded, yet under plain ``python`` each run prints something else:
the order of a set of strings follows their hashes, and Python salts those
hashes with a random value each time the interpreter starts. Setting
``PYTHONHASHSEED`` from inside the program is too late. ``seedscope run``
starts the interpreter with the hash seed fixed, and then every run agrees.

    seedscope verify -- python examples/vocabulary.py         # differs: exit 1
    seedscope verify -- seedscope run examples/vocabulary.py  # agrees: exit 0

Needs only the standard library (and seedscope).
"""

from __future__ import annotations

import hashlib
import random
import struct

from seedscope import deterministic

TEXT = """
Reproducible randomness needs more than a seed. The seed fixes the streams of
random numbers, but a program also depends on the order in which it visits
things, and the order of a set of strings is not part of the seed: it follows
the hashes of the strings, which the interpreter salts afresh every time it
starts. A vocabulary built by enumerating a set of words gives the same word a
different id in every run, so the embedding each word receives, the batches a
model sees and the weights it ends with all change, while every generator was
seeded exactly as the recipe says.
"""

SENTENCE = "the seed fixes the streams of random numbers"
EMBEDDING_SIZE = 4


def build_vocabulary(text: str) -> dict[str, int]:
    """Word -> id, in set order: the bug. (``sorted(set(words))`` would be reproducible.)"""
    words = {word.strip(".,:").lower() for word in text.split()}
    return {word: index for index, word in enumerate(words)}


def main() -> None:
    with deterministic(0):
        vocabulary = build_vocabulary(TEXT)
        # One embedding per id, drawn from the seeded stream in id order.
        embeddings = [
            [random.gauss(0.0, 1.0) for _ in range(EMBEDDING_SIZE)] for _ in range(len(vocabulary))
        ]
    ids = [vocabulary[word] for word in SENTENCE.split()]
    digest = hashlib.sha256()
    for word in SENTENCE.split():
        digest.update(struct.pack(f"{EMBEDDING_SIZE}d", *embeddings[vocabulary[word]]))
    print(f"vocabulary: {len(vocabulary)} words")
    print(f"ids of {SENTENCE!r}: {ids}")
    print(f"embeddings of the sentence, sha256: {digest.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
