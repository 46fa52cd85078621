"""XLA's persistent compile cache: a shape's kernels are compiled once per machine, not per process.

TensorFlow keeps XLA's executables on disk when TF_XLA_FLAGS holds
--tf_xla_persistent_cache_directory=DIR; it reads the flags when its runtime starts, so
`enable` must run before that (importing TensorFlow does not start it). The folder:

    ZSCRGAN_COMPILE_CACHE unset      $XDG_CACHE_HOME/zscrgan/xla, else ~/.cache/zscrgan/xla
    ZSCRGAN_COMPILE_CACHE=DIR        DIR
    ZSCRGAN_COMPILE_CACHE=off        no cache

each with a sub-folder per TensorFlow version and machine kind (CPU model and features, GPU
models), so no executable is loaded by another TensorFlow or on a CPU it was not built for.
A user's own --tf_xla_persistent_cache_directory in TF_XLA_FLAGS wins. The cache changes
only time: an executable is the compiled HLO, which TensorFlow checks against the traced one.
"""
import glob
import hashlib
import importlib.metadata
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


def machine_kind():
    """`<arch>-<8 hex>`: a digest of the CPU's model and features and the GPUs' models,
    whatever an executable compiled here may depend on."""
    facts = [platform.machine(), platform.processor()]
    try:
        with open("/proc/cpuinfo") as f:
            facts += sorted({line.strip() for line in f if line.startswith(("model name", "flags", "Features"))})
    except OSError:
        pass
    for info in sorted(glob.glob("/proc/driver/nvidia/gpus/*/information")):
        with open(info) as f:
            facts += [line.strip() for line in f if line.startswith("Model")]
    return f"{platform.machine() or 'cpu'}-{hashlib.sha1(repr(facts).encode()).hexdigest()[:8]}"


def folder(environ=os.environ):
    """Where this TensorFlow on this machine keeps its executables, or None (cache off)."""
    top = root(environ)
    return top and os.path.join(top, f"tf{tf_version()}-{machine_kind()}")


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


def drop_after_failure(error, environ=os.environ):
    """After a compiled call failed with `error`: if it is XLA failing to load a cache entry,
    delete the cache folder's entries (which one failed is not known) and return the one line
    that says so; otherwise None."""
    path = user_folder(environ.get("TF_XLA_FLAGS", ""))
    message = str(getattr(error, "message", error)).split(" [Op:")[0].strip()
    if not path or not LOAD_FAILURE.search(message):
        return None
    for entry in glob.glob(os.path.join(path, "*.pb")):
        try:
            os.remove(entry)
        except OSError:
            pass
    return f"warning: compile cache: an entry in {path} could not be loaded ({message}); emptied it, compiling again"
