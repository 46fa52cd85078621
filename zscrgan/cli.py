"""The one command line: `zscrgan <tool> ...` (installed), `python -m zscrgan <tool> ...` (a clone),
and `python run_exp.py ...` (the reference's command, the same as `train`).

Each tool module offers `add_arguments(parser)` and `main(args) -> exit status`; this module
parses, dispatches and turns every error into one line (docs/algorithm.md §11.3):
exit status 0 done, 1 a run failed (a refused write, failed trials), 2 bad input or refused
(nothing started), 3 training diverged, 128 + N stopped by signal N.
"""
import argparse
import importlib
import os
import re
import signal
import sys

from zscrgan.errors import (EXIT_BAD_INPUT, EXIT_OK, EXIT_DIVERGED, EXIT_FAILED, BadInput, Diverged, RunFault, Stopped,
                            UsageError, one_line)

# subcommand: (module, what it does). Later tools add a line here.
TOOLS = {
    "train": ("zscrgan.train", "train ZSCRGAN on one dataset (what run_exp.py does)"),
    "sweep": ("zscrgan.sweep", "run many runs (datasets x seeds x a grid) on Ray Tune"),
    "report": ("zscrgan.report", "summarise a sweep, or plot one run's history"),
    "inspect": ("zscrgan.inspector", "read a retrieval dump or a run's history"),
    "baselines": ("zscrgan.baselines", "ridge, CCA and chance on a dataset's unseen split"),
    "prepare": ("zscrgan.prepare", "write or check a dataset folder"),
    "export": ("zscrgan.export", "write a run's checkpoint as a SavedModel that TensorFlow alone loads"),
    "retrieve": ("zscrgan.retrieve", "embed queries and a gallery with an export, rank, index, draw"),
}


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (UsageError), never a usage block."""

    def error(self, message):
        option = re.match(r"argument (--\w+): expected one argument$", message)
        if option:  # argparse takes a value such as -1e-4 for an option
            message += f" (write a negative number as {option.group(1)}=-1e-4)"
        raise UsageError(f"{self.prog}: {message} (see --help)")


def positive(kind):
    """An argparse type: a number of `kind` greater than 0."""
    def parse(text):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def run_arguments(parser, dataset_required=True):
    """The flags that name a run, the same for every tool that reads one."""
    parser.add_argument("--dataset", required=dataset_required, metavar="NAME", help="the dataset folder's name")
    parser.add_argument("--run_name", metavar="NAME", help="the run's name (its --run_name), if it had one")
    parser.add_argument("--logs_dir", metavar="DIR", help="where its <NAME>_logs folder is (default: configs/default.yml's)")
    parser.add_argument("--results_dir", metavar="DIR", help="where its <NAME>_res folder is (default: configs/default.yml's)")
    parser.add_argument("--datasets_dir", metavar="DIR", help="where dataset folders live (default: configs/default.yml's)")


# --------------------------------------------------------------------------- dispatch


def _parser(prog, argv):
    """(parser, the arguments it parses): the named tool's own parser, importing only that tool,
    or the top-level one that lists the tools (for --help, or to refuse an unknown tool)."""
    if argv and argv[0] in TOOLS:
        parser = Parser(prog=f"{prog} {argv[0]}", description=TOOLS[argv[0]][1])
        _tool(argv[0]).add_arguments(parser)
        parser.set_defaults(tool=argv[0])
        return parser, argv[1:]
    parser = Parser(prog=prog, description="ZSCRGAN (CIKM 2020) on TensorFlow 2: train, sweep, read and "
                                           "use runs. `%(prog)s <tool> --help` describes a tool.")
    tools = parser.add_subparsers(dest="tool", metavar="<tool>", required=True)
    for name, (_, text) in TOOLS.items():
        tools.add_parser(name, help=text)
    return parser, argv


def _tool(name):
    return importlib.import_module(TOOLS[name][0])


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
        print("interrupted; the latest checkpoint is kept", file=sys.stderr)
        return 128 + signal.SIGINT


def _fail(error, status):
    print(f"error: {one_line(error)}", file=sys.stderr)
    return status


def console():
    """The `zscrgan` console script."""
    sys.exit(main())


def forward(tool):
    """`python -m zscrgan.<tool> ...`, the command of earlier versions: the same as `python -m zscrgan <tool> ...`."""
    sys.exit(main(sys.argv[1:], prog=f"python -m zscrgan {tool}", only=tool))
