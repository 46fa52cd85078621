"""XLA's persistent compile cache: where it lives, that it keeps the user's flags, that a
damaged entry is dropped, and that a run with it (cold, warm, damaged) equals a run without."""
import glob
import io
import os
import subprocess

import pytest

from conftest import TINY_FLAGS, history_rows, make_dataset, run_exp_command
from zscrgan.run import compile_cache

# A cache entry as TensorFlow writes it: a protocol-buffer message of key (1), HLO (2) and
# executable (3), each a length-delimited field (tag, length, bytes).
ENTRY = bytes([0x0A, 3]) + b"key" + bytes([0x12, 4]) + b"hlo!" + bytes([0x1A, 0x80, 0x01]) + b"x" * 128


def test_the_folder_is_xdgs_then_homes_and_the_variable_moves_or_turns_it_off(tmp_path):
    assert compile_cache.root({"XDG_CACHE_HOME": str(tmp_path)}) == str(tmp_path / "zscrgan" / "xla")
    home = os.path.expanduser("~")
    assert compile_cache.root({}) == os.path.join(home, ".cache", "zscrgan", "xla")
    assert compile_cache.root({compile_cache.ENV: str(tmp_path / "c"), "XDG_CACHE_HOME": "x"}) == str(tmp_path / "c")
    for off in ("off", "OFF", "0", ""):
        assert compile_cache.root({compile_cache.ENV: off}) is None
        assert compile_cache.folder({compile_cache.ENV: off}) is None


def test_remembered_values_live_in_the_machines_folder_and_a_bad_file_is_forgotten(tmp_path):
    kept = compile_cache.Remembered("ops", {compile_cache.ENV: str(tmp_path)})
    assert kept.get("a key") is None
    kept.put("a key", ["bias:g1", "fwd:d2"])
    again = compile_cache.Remembered("ops", {compile_cache.ENV: str(tmp_path)})
    assert again.get("a key") == ["bias:g1", "fwd:d2"] and again.get("another key") is None
    (path,) = glob.glob(os.path.join(compile_cache.folder({compile_cache.ENV: str(tmp_path)}), "ops-*.json"))
    with open(path, "w") as f:
        f.write('{"key": "a ke')
    assert again.get("a key") is None
    off = compile_cache.Remembered("ops", {compile_cache.ENV: "off"})
    off.put("a key", [1])
    assert off.get("a key") is None


def test_each_tensorflow_version_and_machine_has_its_own_sub_folder(tmp_path):
    path = compile_cache.folder({compile_cache.ENV: str(tmp_path)})
    assert os.path.dirname(path) == str(tmp_path)
    name = os.path.basename(path)
    assert name.startswith(f"tf{compile_cache.tf_version()}-") and compile_cache.tf_version() != "unknown"
    assert name.endswith(compile_cache.machine_kind())


def test_the_machine_kind_follows_the_cpus_model_and_features(tmp_path):
    cpu = tmp_path / "cpuinfo"
    cpu.write_text("processor : 0\nmodel name : Some CPU\nflags : fpu sse2 avx2\nprocessor : 1\n")
    kind = compile_cache.machine_kind(str(cpu), str(tmp_path / "none"))
    cpu.write_text("processor : 0\nmodel name : Some CPU\nflags : fpu sse2 avx2\nbogomips : 4000\n")
    assert compile_cache.machine_kind(str(cpu), str(tmp_path / "none")) == kind  # what does not matter
    cpu.write_text("processor : 0\nmodel name : Some CPU\nflags : fpu sse2 avx512f\n")
    assert compile_cache.machine_kind(str(cpu), str(tmp_path / "none")) != kind  # another instruction set
    gpu = tmp_path / "gpus" / "0000:01:00.0"
    gpu.mkdir(parents=True)
    (gpu / "information").write_text("Model: \t A GPU\n")
    assert compile_cache.machine_kind(str(cpu), str(tmp_path / "gpus" / "*" / "information")) not in (
        kind, compile_cache.machine_kind(str(cpu), str(tmp_path / "none")))


def test_other_xla_flags_get_their_own_sub_folder(tmp_path):
    env = {compile_cache.ENV: str(tmp_path)}
    plain = compile_cache.folder(env)
    assert compile_cache.folder({**env, "TF_XLA_FLAGS": f"{compile_cache.FLAG}=/elsewhere"}) == plain
    fast = compile_cache.folder({**env, "TF_XLA_FLAGS": "--xla_cpu_enable_fast_math=true --tf_xla_auto_jit=2"})
    slow = compile_cache.folder({**env, "TF_XLA_FLAGS": "--xla_cpu_enable_fast_math=false --tf_xla_auto_jit=2"})
    assert fast.startswith(plain + "-flags") and len({plain, fast, slow}) == 3
    assert compile_cache.folder({**env, "TF_XLA_FLAGS": "--tf_xla_auto_jit=2 --xla_cpu_enable_fast_math=true"}) == fast


def test_enable_appends_to_the_users_xla_flags(tmp_path):
    env = {compile_cache.ENV: str(tmp_path), "TF_XLA_FLAGS": "--tf_xla_auto_jit=2"}
    path = compile_cache.enable(env)
    assert env["TF_XLA_FLAGS"] == f"--tf_xla_auto_jit=2 {compile_cache.FLAG}={path}"
    assert os.path.isdir(path) and path == compile_cache.folder(env)
    assert compile_cache.enable(env) == path and env["TF_XLA_FLAGS"].count(compile_cache.FLAG) == 1


def test_a_users_own_cache_folder_wins_and_off_sets_nothing(tmp_path):
    own = f"--tf_xla_auto_jit=2 {compile_cache.FLAG}={tmp_path / 'mine'}"
    env = {compile_cache.ENV: str(tmp_path / "ours"), "TF_XLA_FLAGS": own}
    assert compile_cache.enable(env) == str(tmp_path / "mine") and env["TF_XLA_FLAGS"] == own
    assert not (tmp_path / "ours").exists()
    env = {compile_cache.ENV: "off"}
    assert compile_cache.enable(env) is None and "TF_XLA_FLAGS" not in env


def test_damaged_entries_are_dropped_with_one_line(tmp_path):
    env = {compile_cache.ENV: str(tmp_path)}
    path = compile_cache.folder(env)
    os.makedirs(path)
    for name, data in (("whole", ENTRY), ("cut", ENTRY[:100]), ("empty", b""), ("noise", b"\xff" * 64)):
        with open(os.path.join(path, f"xla_compile_cache__{name}__XLA_CPU_JIT.pb"), "wb") as f:
            f.write(data)
    err = io.StringIO()
    assert compile_cache.enable(env, err) == path
    assert [os.path.basename(p) for p in glob.glob(os.path.join(path, "*.pb"))] == [
        "xla_compile_cache__whole__XLA_CPU_JIT.pb"]
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and "dropped 3 damaged or unreadable entries" in lines[0] and path in lines[0]
    err = io.StringIO()
    compile_cache.enable(env, err)
    assert err.getvalue() == ""


def test_an_unusable_folder_means_no_cache_and_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    env = {compile_cache.ENV: str(tmp_path / "file"), "TF_XLA_FLAGS": "--tf_xla_auto_jit=2"}
    err = io.StringIO()
    assert compile_cache.enable(env, err) is None
    assert env["TF_XLA_FLAGS"] == "--tf_xla_auto_jit=2"
    assert len(err.getvalue().splitlines()) == 1 and "compiling without it" in err.getvalue()


def entry(function):
    """A cache entry whose HLO module is named after the traced `function`, as TensorFlow names it."""
    name = f"{function}[_XlaMustCompile=true,config_proto=1]".encode()
    hlo = bytes([0x0A, len(name)]) + name + bytes([0x12, 2]) + b"ok"
    return bytes([0x0A, 3]) + b"key" + bytes([0x12, len(hlo)]) + hlo + bytes([0x1A, 4]) + b"exe!"


def test_a_failure_to_load_drops_the_entry_of_the_function_that_failed(tmp_path):
    (tmp_path / "e.pb").write_bytes(entry("__inference__e_step_7"))
    (tmp_path / "m.pb").write_bytes(entry("__inference__m_step_9"))
    assert compile_cache.entry_function(str(tmp_path / "e.pb")) == "__inference__e_step_7"
    env = {"TF_XLA_FLAGS": f"{compile_cache.FLAG}={tmp_path}"}
    failed = RuntimeError("Failed to parse serialized CpuAotCompilationResult. [Op:__inference__e_step_7]")
    said = compile_cache.drop_after_failure(failed, env)
    assert said == (f"warning: compile cache: an entry in {tmp_path} could not be loaded (Failed to parse "
                    "serialized CpuAotCompilationResult.); dropped the entry of __inference__e_step_7, compiling again")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pb"]


def test_a_failure_no_entry_matches_empties_the_cache_and_other_failures_are_left_alone(tmp_path):
    (tmp_path / "a.pb").write_bytes(ENTRY)
    env = {"TF_XLA_FLAGS": f"{compile_cache.FLAG}={tmp_path}"}
    other = RuntimeError("OOM when allocating tensor [Op:__inference__e_step_7]")
    assert compile_cache.drop_after_failure(other, env) is None and (tmp_path / "a.pb").exists()
    failed = RuntimeError("Failed to parse serialized CpuAotCompilationResult. [Op:__inference__e_step_7]")
    assert compile_cache.drop_after_failure(failed, {}) is None and (tmp_path / "a.pb").exists()
    said = compile_cache.drop_after_failure(failed, env)
    assert said == (f"warning: compile cache: an entry in {tmp_path} could not be loaded (Failed to parse "
                    "serialized CpuAotCompilationResult.); emptied it, compiling again")
    assert not (tmp_path / "a.pb").exists()


# --------------------------------------------------------------------------- end to end

def train(base, cache):
    """A tiny XLA run (the default) of 2 rounds in a fresh process with ZSCRGAN_COMPILE_CACHE=cache.
    Returns (its outputs: history without timings, {file: bytes} of dumps and checkpoints; stderr)."""
    cmd, env = run_exp_command(base, *TINY_FLAGS, "--epochs", "2")
    env[compile_cache.ENV] = cache
    env.pop("TF_XLA_FLAGS", None)
    proc = subprocess.run(cmd, cwd=str(base), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = base / "logs" / "TINY_logs"
    rows = history_rows(logs)
    files = sorted(glob.glob(str(base / "res" / "TINY_res" / "*.pkl")) + glob.glob(str(logs / "latest" / "*"))
                   + glob.glob(str(logs / "best" / "*")))
    assert len(rows) == 2 and any(p.endswith(".index") for p in files)
    return (rows, {os.path.relpath(p, base): open(p, "rb").read() for p in files}), proc.stderr


@pytest.mark.slow
def test_a_run_with_the_cache_cold_warm_or_damaged_equals_one_without(tmp_path):
    def base(name):
        make_dataset(str(tmp_path / name / "datasets" / "TINY"))
        return tmp_path / name

    cache = str(tmp_path / "xla")
    off, _ = train(base("off"), "off")
    cold, _ = train(base("cold"), cache)
    entries = glob.glob(os.path.join(cache, "*", "*.pb"))
    assert entries, "the cold run wrote no cache entry"
    warm, err = train(base("warm"), cache)
    assert "compile cache" not in err
    assert cold == off and warm == off
    # TensorFlow alone dies on both in the first E-step: a truncated entry (OutOfRangeError),
    # caught before TensorFlow starts, and a whole one whose executable is damaged (InternalError),
    # caught when XLA fails to load it.
    cut, broken = sorted(entries)
    os.truncate(cut, 100)
    damage_executable(broken)
    damaged, err = train(base("damaged"), cache)
    assert damaged == off
    said = [line for line in err.splitlines() if "compile cache" in line]
    folder = os.path.dirname(cut)
    assert said == [f"warning: compile cache: dropped 1 damaged or unreadable entry from {folder}; compiling again",
                    said[1]] and said[1].startswith(f"warning: compile cache: an entry in {folder} could not be loaded")
    assert said[1].endswith("compiling again") and "dropped the entry of __inference__" in said[1]
    # The cut entry was written again, whole; the broken one was dropped alone (no other entry
    # was whole here) and the steps traced again wrote entries of their own.
    left = glob.glob(os.path.join(folder, "*.pb"))
    assert cut in left and broken not in left and len(left) > len(entries)
    assert not compile_cache.bad_entries(folder)


def damage_executable(path):
    """Overwrite the executable (field 3) of a cache entry with zeros, keeping its length."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    i = 0
    while i < len(data):
        tag, i = varint(data, i)
        size, i = varint(data, i)
        if tag >> 3 == 3:
            data[i:i + size] = bytes(size)
        i += size
    with open(path, "wb") as f:
        f.write(data)


def varint(data, i):
    value, shift = 0, 0
    while True:
        value, shift, i = value | (data[i] & 0x7F) << shift, shift + 7, i + 1
        if data[i - 1] < 0x80:
            return value, i
