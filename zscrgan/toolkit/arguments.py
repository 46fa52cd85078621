"""The flags every tool spells the same way, and how a tool finds its dataset folder."""
import argparse
import os

from zscrgan.errors import UsageError
from zscrgan.results.run import default


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
    datasets_dir_argument(parser)


def datasets_dir_argument(parser):
    parser.add_argument("--datasets_dir", metavar="DIR",
                        help="where dataset folders live (default: the run's own, else configs/default.yml's)")


def datasets_dir(args, cfg=None):
    """Where a tool looks for dataset folders: --datasets_dir, else the run's own config's
    (`cfg`, e.g. Run.cfg or an export's), else configs/default.yml's."""
    return args.datasets_dir or (cfg or {}).get("datasets_dir") or default("datasets_dir")


def input_file(flag, path, what):
    """Refuse (UsageError) an input `path` that is not a file, saying whether it is missing or a
    folder; `what` names the file wanted (e.g. "an .npy array"). Returns path."""
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path} is a folder: give {what}")
    raise UsageError(f"{flag} {path}: no such file (give {what})")
