"""The one command line: `zscrgan <tool> ...` (installed), `python -m zscrgan <tool> ...` (a clone),
and `python run_exp.py ...` (the reference's command, the same as `train`).

Each tool module (zscrgan/tools/) offers `add_arguments(parser)` and `main(args) -> exit
status`; this module loads only the tool asked for, parses, dispatches and turns every error
into one line (docs/algorithm.md §11.3): exit status 0 done, 1 a run failed (a refused write,
failed trials), 2 bad input or refused (nothing started), 3 training diverged, 128 + N
stopped by signal N.
"""
import argparse
import difflib
import importlib
import os
import re
import signal
import sys

from zscrgan.errors import (EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_FAILED, EXIT_OK, BadInput, Diverged, RunFault, Stopped,
                            UsageError, one_line)

# subcommand: what it does; its module is zscrgan.tools.<subcommand>.
TOOLS = {
    "train": "train ZSCRGAN on one dataset (what run_exp.py does)",
    "sweep": "run many runs (datasets x seeds x a grid) on Ray Tune",
    "report": "summarise a sweep, or plot one run's history",
    "inspect": "read a retrieval dump or a run's history",
    "baselines": "ridge, CCA and chance on a dataset's unseen split",
    "prepare": "write or check a dataset folder",
    "export": "write a run's checkpoint as a SavedModel that TensorFlow alone loads",
    "retrieve": "embed queries and a gallery with an export, rank, index, draw",
    "devices": "list the devices TensorFlow sees and check that each reproduces the algorithm",
}


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (UsageError), never a usage block; a flag is taken
    only as written (no prefixes: `--epoch` is not `--epochs`), and an unknown flag is named,
    with the closest known one, before any missing argument."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        option = re.match(r"argument (--\w+): expected one argument$", message)
        if option:  # argparse takes a value such as -1e-4 for an option
            message += f" (write a negative number as {option.group(1)}=-1e-4)"
        raise UsageError(f"{self.prog}: {message} (see --help)")

    def parse_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        self.check_flags(args)
        return super().parse_args(args, namespace)

    def check_flags(self, args):
        """Refuse the first `--flag` in args that neither this parser nor its chosen subcommand knows."""
        known = set(self._option_string_actions)
        for action in self._actions:
            if isinstance(getattr(action, "choices", None), dict):  # subcommands: the one given
                chosen = next((a for a in args if a in action.choices), None)
                if chosen is not None:
                    known |= set(action.choices[chosen]._option_string_actions)
        for token in args:
            if token == "--":
                return
            flag = token.split("=", 1)[0]
            if flag.startswith("--") and flag not in known:
                close = difflib.get_close_matches(flag, sorted(known), n=1, cutoff=0.75)
                self.error(f"unrecognized argument {flag}" + (f": did you mean {close[0]}?" if close else ""))


def _parser(prog, argv):
    """(parser, the arguments it parses): the named tool's own parser, importing only that tool,
    or the top-level one that lists the tools (for --help, or to refuse an unknown tool)."""
    if argv and argv[0] in TOOLS:
        parser = Parser(prog=f"{prog} {argv[0]}", description=TOOLS[argv[0]])
        _tool(argv[0]).add_arguments(parser)
        parser.set_defaults(tool=argv[0])
        return parser, argv[1:]
    parser = Parser(prog=prog, description="ZSCRGAN (CIKM 2020) on TensorFlow 2: train, sweep, read and "
                                           "use runs. `%(prog)s <tool> --help` describes a tool.")
    tools = parser.add_subparsers(dest="tool", metavar="<tool>", required=True)
    for name, text in TOOLS.items():
        tools.add_parser(name, help=text)
    return parser, argv


def _tool(name):
    return importlib.import_module(f"zscrgan.tools.{name}")


def main(argv=None, prog="zscrgan", only=None):
    """Parse argv, run the tool, return its exit status; every error is one line on stderr.

    only: the one tool this command runs (run_exp.py: train), its flags without a subcommand.
    """
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        parser, rest = _parser(prog, [only] + argv if only else argv)
        if only:
            parser.prog = prog
        args = parser.parse_args(rest)
        return _tool(args.tool).main(args)
    except BadInput as e:
        return _fail(e, EXIT_BAD_INPUT)
    except BrokenPipeError:  # the reader of our output went away (e.g. `| head`): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as e:
        return _fail(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}", EXIT_BAD_INPUT)
    except RunFault as e:
        return _fail(e, EXIT_FAILED)
    except Diverged as e:
        return _fail(e, EXIT_DIVERGED)
    except Stopped as e:
        signum, message = e.args
        print(message, file=sys.stderr)
        return 128 + signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


def _fail(error, status):
    print(f"error: {one_line(error)}", file=sys.stderr)
    return status


def process_main(prog, only=None):
    """A process's entry (`zscrgan`, `python -m zscrgan`, run_exp.py): main, then exit with its
    status. The process is ours, so TensorFlow starts in it without Keras (run/devices.py)."""
    from zscrgan.run.devices import start_without_keras
    start_without_keras()
    sys.exit(main(prog=prog, only=only))


def console():
    """The `zscrgan` console script."""
    process_main("zscrgan")
