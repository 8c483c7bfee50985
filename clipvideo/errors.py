"""What the command line does with a failure it expects, and the exit status it gives.

Every expected failure is one line on stderr, `clipvideo COMMAND: error: ...`, naming the file,
option or key and what to do; no traceback. Exit statuses (docs/reliability.md):

    0    done
    1    done, but some inputs failed (predict: an unreadable video; prepare: a video that failed)
    2    bad input: an option, file, checkpoint, recipe, list or device that cannot be used, or a
         path that cannot be read or written (the path and the system's reason)
    3    training stopped on a non-finite loss
    130  interrupted (Ctrl-C)
    141  the reader of stdout went away (`clipvideo models | head -2`): as git and a shell report a
         command ended by SIGPIPE (128 + 13); nothing is printed, as nobody is left to read it

Library code raises its own error classes (ConfigError, CheckpointError, ...); `cli.expected_errors()`
lists them for the CLI's boundary, so a new kind of bad input needs one entry there. This module
imports nothing from clipvideo, so every layer (clip/, data/ included) may use it.
"""

import re


class CommandLineError(ValueError):
    """An option value that cannot be used (no such device, no such filter value)."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an error's message (its class name when it has none), at most `limit` characters."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    return first if len(first) <= limit else first[: limit - 3] + "..."


_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_UNSUPPORTED_OPERAND = re.compile(r"Unsupported operand (\d+)")


def safe_load_reason(error: BaseException) -> str:
    """Why `torch.load(weights_only=True)` refused a file, in one line, without torch's advice to
    retry with weights_only=False (which would run whatever code the file's pickle names)."""
    text = str(error)
    if "Weights only load failed" not in text:
        return one_line(error)
    found = _UNSUPPORTED_GLOBAL.search(text)
    if found:
        return (f"it pickles Python objects ({found.group(1)}), which clipvideo does not load: "
                "only tensors and plain containers are read, no code from the file is run")
    found = _UNSUPPORTED_OPERAND.search(text)
    if found:
        return f"it is not a torch.save file that can be read safely (pickle operation {found.group(1)})"
    return "it holds more than tensors and plain containers, which clipvideo does not load"


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`1 clip`, `3 clips`; `many` for irregular plurals."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"
