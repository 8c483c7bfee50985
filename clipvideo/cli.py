"""The `clipvideo` command."""

import argparse
import sys


def smoke_demo() -> int:
    import torch

    from .clip import create_clip, tokenize

    model = create_clip("tiny").eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 64, 64), tokenize(["moving left", "moving right"]))
    print(f"tiny CLIP smoke run: logits {tuple(logits.shape)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clipvideo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the built-in demo")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return smoke_demo()
    return 1


if __name__ == "__main__":
    sys.exit(main())
