"""Ctrl-C and SIGTERM end a command the same way: every cleanup runs (the private folders of
half-written outputs are removed), one line says why, and the exit code is 128 + the signal
number (130, 143), as a shell reports a command ended by a signal.

SIGTERM is what `timeout`, CI cancellations and process supervisors send; by default Python dies
of it on the spot, leaving its temporary files behind. Here it unwinds like Ctrl-C.

The handlers are installed the moment the command itself imports this module, which `cli` does
before anything else: a Ctrl-C while the modules load (the first fraction of a second) used to
print a Python traceback. So this module imports only what Python has loaded when it starts (os,
signal, sys, contextlib). Before that, while Python itself starts (a few hundredths of a second),
a Ctrl-C is Python's to handle. Outside a running command a signal ends the process at once
(there is nothing to clean up); inside one it raises KeyboardInterrupt, which `cli._guarded`
turns into the message and the exit code. A program that merely imports retentionrules (a
notebook, the tests) gets no handlers from it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType

WORDS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
_received: list[int] = []
_stopped: list[int] = []  # the exit code of the stop reported by `outcome`
_commands = [0]  # commands running: a signal there unwinds them instead of exiting at once


def install() -> None:
    """Handle Ctrl-C and SIGTERM as this module says (idempotent)."""
    for number in WORDS:
        signal.signal(number, _on_signal)


def _on_signal(number: int, frame: FrameType | None) -> None:
    if _in_extension_init(frame):
        _deliver_later(number)
        return
    _received.append(number)
    if _commands[0]:
        raise KeyboardInterrupt  # through the command's cleanups, up to cli._guarded
    # Outside a command there is nothing to clean up, and an exception raised here could land
    # where Python ignores it (a callback of the import machinery): exit at once.
    message, code = outcome()
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stdout.flush()
        print(message, file=sys.stderr, flush=True)
    os._exit(code)


def _in_extension_init(frame: FrameType | None) -> bool:
    """Whether Python code runs on behalf of a C extension being initialised (`import duckdb`):
    an exception raised there makes some (DuckDB's, built with nanobind) abort the process with a
    core dump, whatever the exception."""
    from importlib.machinery import ExtensionFileLoader

    while frame is not None:
        code = frame.f_code.co_name
        if code in ("create_module", "exec_module") and isinstance(
            frame.f_locals.get("self"), ExtensionFileLoader
        ):
            return True
        frame = frame.f_back
    return False


def _deliver_later(number: int) -> None:
    """The signal again in a few milliseconds, when the extension is (most likely) ready."""
    import threading

    timer = threading.Timer(0.005, os.kill, (os.getpid(), number))
    timer.daemon = True
    timer.start()


class command:  # a class, not contextlib: used as `with interrupts.command():`
    """While a command runs, a signal raises KeyboardInterrupt so that its cleanups run."""

    def __enter__(self) -> None:
        _commands[0] += 1

    def __exit__(self, *exc_info: object) -> None:
        _commands[0] -= 1


def outcome() -> tuple[str, int]:
    """What to say, and the exit code, for the signal that stopped the command: SIGTERM if one
    came (a supervisor asked; a Ctrl-C meanwhile changes nothing), else Ctrl-C (also when Python's
    own handler raised the KeyboardInterrupt)."""
    number = signal.SIGTERM if signal.SIGTERM in _received else signal.SIGINT
    _received.clear()
    _stopped[:] = [128 + number]
    return f"retentionrules: {WORDS[number]}", 128 + number


def pending() -> bool:
    """Whether a signal came that no message has reported yet."""
    return bool(_received)


def stopped() -> bool:
    """Whether a command was stopped by a signal (and said so)."""
    return bool(_stopped)


def finish() -> None:
    """Exit with the code of the stop, once every object is released (DuckDB closes its
    database, removing any temporary files of its own). By `os._exit`, not SystemExit: CPython
    turns the exit of a process whose KeyboardInterrupt passed through code run by `exec` (which
    dataclasses use) into a death by SIGINT, even when it was caught, and would report a SIGTERM
    as a Ctrl-C."""
    import gc

    gc.collect()
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(_stopped[0])


def leave() -> None:
    """Say why, and exit with 128 + the signal number (raises SystemExit: for `cli.main`)."""
    message, code = outcome()
    with contextlib.suppress(OSError, ValueError, AttributeError):  # stderr gone: exit all the same
        print(message, file=sys.stderr, flush=True)
    raise SystemExit(code)


def _is_the_command() -> bool:
    """Whether this process is the `retentionrules` command: the console script, or
    `python -m retentionrules`. Only then may importing install process-wide handlers."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None:
        return bool(spec.name == "retentionrules.__main__")
    script = getattr(main, "__file__", None) or ""
    names = {os.path.basename(script), os.path.basename(os.path.realpath(script))}
    return any(name.split(".")[0].removesuffix("-script") == "retentionrules" for name in names)


if _is_the_command():
    install()
