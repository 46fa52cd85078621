"""XLA's persistent compile cache: a shape's kernels are compiled once per machine, not per process.

TensorFlow keeps XLA's executables on disk when TF_XLA_FLAGS holds
--tf_xla_persistent_cache_directory=DIR; it reads the flags when its runtime starts, so
`enable` must run before that (importing TensorFlow does not start it). The folder:

    ZSCRGAN_COMPILE_CACHE unset      $XDG_CACHE_HOME/zscrgan/xla, else ~/.cache/zscrgan/xla
    ZSCRGAN_COMPILE_CACHE=DIR        DIR
    ZSCRGAN_COMPILE_CACHE=off        no cache

each with a sub-folder per TensorFlow version, machine kind (CPU model and features, GPU
models) and XLA flags (the other flags of TF_XLA_FLAGS, which may change what XLA compiles),
so no executable is loaded by another TensorFlow, on a CPU it was not built for, or for
other flags. A user's own --tf_xla_persistent_cache_directory in TF_XLA_FLAGS wins (and
then the user chooses what shares it). An entry is keyed by the traced function's signature
and its HLO, which TensorFlow checks against the traced one; within one sub-folder the cache
changes only time. Beside XLA's entries the project keeps what it reads off XLA's compiler
once per machine (`Remembered`: a stacked model's per-member ops, docs/algorithm.md §11.5).
"""
import glob
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import sys

ENV = "ZSCRGAN_COMPILE_CACHE"
FLAG = "--tf_xla_persistent_cache_directory"
OFF = ("off", "0", "false", "no", "none", "")
# What TensorFlow (2.21) says when an entry cannot be loaded: truncated, or its executable damaged.
LOAD_FAILURE = re.compile(r"Read less bytes than requested|Failed to parse serialized|deserializ", re.I)


def root(environ=os.environ):
    """The cache's top folder, or None when ZSCRGAN_COMPILE_CACHE turns it off."""
    chosen = environ.get(ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in OFF else os.path.abspath(os.path.expanduser(chosen))
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "zscrgan", "xla")


def tf_version():
    """The installed TensorFlow's version, read without importing it."""
    for dist in ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def machine_kind(cpuinfo="/proc/cpuinfo", gpus="/proc/driver/nvidia/gpus/*/information"):
    """`<arch>-<8 hex>`: a digest of the CPU's model and features and the GPUs' models (read
    from Linux's files `cpuinfo` and `gpus`), whatever an executable compiled here may depend on."""
    facts = [platform.machine(), platform.processor()]
    try:
        with open(cpuinfo) as f:
            facts += sorted({line.strip() for line in f if line.startswith(("model name", "flags", "Features"))})
    except OSError:
        pass
    for info in sorted(glob.glob(gpus)):
        with open(info) as f:
            facts += [line.strip() for line in f if line.startswith("Model")]
    return f"{platform.machine() or 'cpu'}-{hashlib.sha1(repr(facts).encode()).hexdigest()[:8]}"


def folder(environ=os.environ):
    """Where this TensorFlow on this machine with these XLA flags keeps its executables, or None
    (cache off): `tf<version>-<machine kind>`, then `-flags<8 hex>` when TF_XLA_FLAGS holds
    flags other than the cache's own."""
    top = root(environ)
    flags = sorted(f for f in environ.get("TF_XLA_FLAGS", "").split() if not f.startswith(FLAG + "="))
    tail = f"-flags{hashlib.sha1(repr(flags).encode()).hexdigest()[:8]}" if flags else ""
    return top and os.path.join(top, f"tf{tf_version()}-{machine_kind()}{tail}")


def user_folder(flags):
    """The cache folder a TF_XLA_FLAGS string sets, or None."""
    for flag in flags.split():
        if flag.startswith(FLAG + "="):
            return flag.split("=", 1)[1]
    return None


def is_whole(f):
    """Whether a binary file holds one whole protocol-buffer message with field 1 (the entry's
    key): a truncated or overwritten entry fails, which TensorFlow would die on when loading
    it. Reads only the fields' tags and lengths."""
    size = f.seek(0, os.SEEK_END)
    f.seek(0)

    def varint():
        value = 0
        for shift in range(0, 64, 7):
            byte = f.read(1)
            if not byte:
                raise ValueError
            value |= (byte[0] & 0x7F) << shift
            if byte[0] < 0x80:
                return value
        raise ValueError

    fields = set()
    try:
        while f.tell() < size:
            tag = varint()
            kind = tag & 7  # wire types: 0 varint, 1 fixed 8 bytes, 2 length + bytes, 5 fixed 4 bytes
            if tag >> 3 == 0 or kind not in (0, 1, 2, 5):
                return False
            if kind == 0:
                varint()
            else:
                f.seek(varint() if kind == 2 else {1: 8, 5: 4}[kind], os.SEEK_CUR)
            fields.add(tag >> 3)
    except ValueError:
        return False
    return f.tell() == size and 1 in fields


def bad_entries(path):
    """The cache files in `path` that TensorFlow could not load: unreadable or not whole."""
    bad = []
    for entry in sorted(glob.glob(os.path.join(path, "*.pb"))):
        try:
            with open(entry, "rb") as f:
                whole = is_whole(f)
        except OSError:
            whole = False
        if not whole:
            bad.append(entry)
    return bad


def enable(environ=os.environ, err=sys.stderr):
    """Point XLA at the cache folder (appended to TF_XLA_FLAGS, a user's own folder kept),
    dropping the entries TensorFlow could not load first. Returns the folder, or None (off,
    or unusable: then the run compiles without it, as it would have without the cache)."""
    flags = environ.get("TF_XLA_FLAGS", "")
    own = user_folder(flags)
    path = own or folder(environ)
    if path is None:
        return None
    try:
        os.makedirs(path, exist_ok=True)
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise PermissionError(f"no permission to use {path}")
        bad = bad_entries(path)
        for entry in bad:
            os.remove(entry)
    except OSError as e:
        if own:
            environ["TF_XLA_FLAGS"] = " ".join(f for f in flags.split() if not f.startswith(FLAG + "="))
        print(f"warning: compile cache {path} is unusable ({e.strerror or e}); compiling without it "
              f"(set {ENV} to another folder, or to off)", file=err)
        return None
    if bad:
        print(f"warning: compile cache: dropped {len(bad)} damaged or unreadable "
              f"entr{'y' if len(bad) == 1 else 'ies'} from {path}; compiling again", file=err)
    if not own:
        environ["TF_XLA_FLAGS"] = f"{flags} {FLAG}={path}".strip()
    return path


class Remembered:
    """A dict of JSON values kept as files `<name>-<sha1 of key>.json` in the cache's folder,
    for what is read off XLA's compiler and holds for this TensorFlow on this machine (the
    folder's name says which). With the cache off, or a file that cannot be read or written,
    it remembers nothing and nothing fails: the value is worked out again."""

    def __init__(self, name, environ=os.environ):
        self.name, self.path = name, user_folder(environ.get("TF_XLA_FLAGS", "")) or folder(environ)

    def _file(self, key):
        return os.path.join(self.path, f"{self.name}-{hashlib.sha1(key.encode()).hexdigest()}.json")

    def get(self, key):
        try:
            with open(self._file(key)) as f:
                found = json.load(f)
            return found["value"] if found.get("key") == key else None
        except (TypeError, OSError, ValueError, KeyError, AttributeError):
            return None

    def put(self, key, value):
        from zscrgan.files import atomic_write
        if self.path:
            try:
                os.makedirs(self.path, exist_ok=True)
                atomic_write(self._file(key), json.dumps({"key": key, "value": value}).encode(), self.name)
            except OSError:
                pass


def entry_function(path):
    """The traced function an entry was compiled from (`__inference__e_step_2161`: the name
    of its HLO module, field 1 of the entry's field 2), or None when it cannot be read."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    try:
        module = _field(head, 2)
        name = _field(module, 1) if module is not None else None
    except (IndexError, ValueError):
        return None
    return name.decode(errors="replace").split("[", 1)[0] if name else None


def _field(data, number):
    """The bytes of the first length-delimited field `number` of a protocol-buffer message
    (possibly cut short after that field's start), or None."""
    i = 0
    while i < len(data):
        tag, i = _varint(data, i)
        kind = tag & 7
        if kind == 2:
            size, i = _varint(data, i)
            if tag >> 3 == number:
                return data[i:i + size]
            i += size
        elif kind == 0:
            i = _varint(data, i)[1]
        elif kind in (1, 5):
            i += 8 if kind == 1 else 4
        else:
            raise ValueError(f"wire type {kind}")
    return None


def _varint(data, i):
    value, shift = 0, 0
    while True:
        byte = data[i]
        value, shift, i = value | (byte & 0x7F) << shift, shift + 7, i + 1
        if byte < 0x80:
            return value, i


def drop_after_failure(error, environ=os.environ):
    """After a compiled call failed with `error`: if it is XLA failing to load a cache entry,
    delete that entry (the one compiled from the function the error names, `[Op:<name>]`; every
    entry when none can be matched) and return the one line that says so; otherwise None."""
    path = user_folder(environ.get("TF_XLA_FLAGS", ""))
    message = str(getattr(error, "message", error))
    failed = re.search(r"\[Op:([^\]\s]+)\]", message)
    message = message.split(" [Op:")[0].strip()
    if not path or not LOAD_FAILURE.search(message):
        return None
    entries = glob.glob(os.path.join(path, "*.pb"))
    matched = [e for e in entries if failed and entry_function(e) == failed.group(1)]
    for entry in matched or entries:
        try:
            os.remove(entry)
        except OSError:
            pass
    what = (f"dropped the entry of {failed.group(1)}" if len(matched) == 1 else
            f"dropped its {len(matched)} entries of {failed.group(1)}" if matched else "emptied it")
    return f"warning: compile cache: an entry in {path} could not be loaded ({message}); {what}, compiling again"
