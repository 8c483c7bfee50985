"""Pieces the model benchmarks share (not a benchmark itself: nothing here is timed)."""

from __future__ import annotations

import argparse

# class names for the text towers: real words, so tokenised lengths look like real prompts
CLASS_WORDS = ["dancing", "cooking", "swimming", "running", "reading", "juggling", "skiing", "surfing",
               "climbing", "painting", "knitting", "boxing", "rowing", "singing", "typing", "diving"]


def model_size_parser(description: str, text_layers: int) -> argparse.ArgumentParser:
    """Arguments for a randomly initialised CLIP of chosen size, a clip batch and repeats."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--vision-width", type=int, default=768)
    parser.add_argument("--vision-layers", type=int, default=4)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--text-width", type=int, default=512)
    parser.add_argument("--text-layers", type=int, default=text_layers)
    parser.add_argument("--embed", type=int, default=512)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--classes", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    return parser
