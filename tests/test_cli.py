"""The one command line (zscrgan/cli.py): subcommands, one-line errors, the package around it."""
import os
import re
import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT
from zscrgan import cli

# TensorFlow's C++ start-up lines (absl, oneDNN, CUDA), printed before Python can silence them.
TF_LINE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} )")


def command(*args):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, [line for line in proc.stderr.splitlines() if not TF_LINE.match(line)]


def test_help_lists_every_tool():
    code, out, _ = command("-m", "zscrgan", "--help")
    assert code == 0 and all(re.search(rf"^\s+{name}\b", out, re.M) for name in cli.TOOLS)


@pytest.mark.parametrize("args", [["run_exp.py"]] + [["-m", "zscrgan", tool] for tool in cli.TOOLS]
                         + [["-m", "zscrgan", "nosuchtool"]])
def test_a_wrong_flag_is_one_line_and_status_2(args):
    code, _, err = command(*args, "--no_such_flag")
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err


def test_no_module_is_named_like_a_standard_library_module():
    names = {f[:-3] for f in os.listdir(os.path.join(ROOT, "zscrgan")) if f.endswith(".py")}
    assert not names & set(sys.stdlib_module_names)


def test_pyproject_has_the_pins_of_requirements_txt():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        pins = {line.strip() for line in f if line.strip() and not line.startswith("#")}
    declared = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    assert declared == pins
    assert project["scripts"]["zscrgan"] == "zscrgan.cli:console"


def tensorflow_pin(requirements):
    """(extras, version pin) of the one TensorFlow line among requirement lines."""
    found = [m.groups() for line in requirements for m in [re.fullmatch(r"tensorflow(\[[\w,-]+\])?(\S+)", line.strip())] if m]
    assert len(found) == 1, requirements
    return found[0]


def test_the_gpu_install_pins_the_tensorflow_of_the_cpu_install():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    with open(os.path.join(ROOT, "requirements-gpu.txt")) as f:
        gpu_txt = [line for line in f if line.strip() and not line.startswith("#")]
    cpu = tensorflow_pin(project["dependencies"])
    assert cpu[0] is None and cpu[1].startswith("==")
    assert tensorflow_pin(project["optional-dependencies"]["gpu"]) == ("[and-cuda]", cpu[1])
    assert tensorflow_pin(gpu_txt) == ("[and-cuda]", cpu[1])
    assert "-r requirements.txt" in [line.strip() for line in gpu_txt]  # the rest of the CPU install


def test_ci_runs_exactly_the_readmes_test_command():
    with open(os.path.join(ROOT, "README.md")) as f:
        command = next(line.split("#")[0].strip() for line in f if "pytest" in line and "pip install" in line)
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        assert command in [line.strip() for line in f]


@pytest.mark.parametrize("args, words", [
    (["-m", "zscrgan", "sweep", "x.yml", "--outt", "X"], "unrecognized argument --outt: did you mean --out?"),
    (["run_exp.py", "--dataset", "MFEAT", "--epoch", "1"], "unrecognized argument --epoch: did you mean --epochs?"),
    (["-m", "zscrgan", "prepare", "check", "--folder", "x"], "unrecognized argument --folder"),
])
def test_a_mistyped_flag_is_named_before_a_missing_argument_and_never_taken_as_a_prefix(args, words):
    code, _, err = command(*args)
    assert code == 2 and len(err) == 1 and words in err[0], err


def test_no_placeholder_says_path_where_a_word_or_a_choice_is_wanted():
    code, out, _ = command("run_exp.py", "--help")
    text = " ".join(out.split())
    assert code == 0 and "--select test|val" in text and "--val_classes N|IDS|file" in text
    assert "--logs_dir DIR" in text and " PATH " not in text.split("Defaults are")[0].replace("--checkpoint PATH", "")
