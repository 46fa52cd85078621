"""One sweep trial on a Ray worker: Tune's trainable, and the start.yml it writes.

A worker process runs trial after trial (Tune's reuse_actors), TensorFlow started once; a
trial whose graphs are its previous trial's (the same dataset and settings, another seed)
runs on that trial's traced kernels, every variable set to its own fresh values
(zscrgan/run/kept_kernels.py): the same run, without tracing or compiling.
"""
import os
import socket
import statistics
import sys
import time

from zscrgan.errors import BadInput, Diverged, one_line
from zscrgan.files import LockHeld, RunLock, restart_fault_counts
from zscrgan.results.run import Run
from zscrgan.results.trials import Trial, write_start
from zscrgan.run.devices import start_without_keras

LOCK_WAIT_S = 60         # how long a trial waits for a previous attempt's process to let go of its folder


def wait_for_lock(folder, timeout=LOCK_WAIT_S):
    """Wait until no process holds the run folder's lock: the process of a killed driver's
    attempt may take a moment to be stopped by Ray. After `timeout`, the run reports it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            RunLock(folder).acquire().release()
            return
        except LockHeld:
            if time.monotonic() > deadline:
                return
            time.sleep(1)


def process_age():
    """Seconds since this process was created (from /proc: Linux), or None."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - ticks / os.sysconf("SC_CLK_TCK")


_trials_here = 0  # trials this worker process has started: Tune gives a process trial after trial


def process_start():
    """{pid, trial_in_process, process_s, tf_import_s, device}: this process's own start as the
    trial sees it (both 0 for a process an earlier trial started), TensorFlow imported meanwhile,
    and the device its models run on (zscrgan.run.devices.process_device)."""
    global _trials_here
    process_s = process_age() if not _trials_here else 0.0
    t0, imported = time.perf_counter(), "tensorflow" in sys.modules
    import tensorflow  # noqa: F401  (a run imports it anyway; here its seconds are counted apart)
    _trials_here += 1
    tf_import_s = 0.0 if imported else time.perf_counter() - t0
    from zscrgan.run.devices import process_device
    return {"pid": os.getpid(), "trial_in_process": _trials_here, "process_s": process_s, "tf_import_s": tf_import_s,
            "device": process_device()}


def start_record(process, startup, em):
    """start.yml: `process` (process_start), the run's `startup` (run.loop.run) and compile_s, the
    seconds of round 1's E- and M-step beyond tracing and a steady round (the median of this
    attempt's later rounds; None without them). em: this attempt's rounds' E+M seconds."""
    compile_s = em[0] - startup.get("trace_s", 0.0) - statistics.median(em[1:]) if len(em) > 1 else None
    return {**process, **startup, "compile_s": compile_s}


def run_trial(config, trials):
    """Tune's trainable: one attempt at the trial `config["trial"]`, resuming the run from its
    latest checkpoint if an earlier attempt left one, on the kernels this worker process traced
    for its previous trial when the graphs are the same. Reports every round to Tune, after
    writing status.yml, with `score` the run's selection metric (what ASHA compares): a trial
    that the scheduler stops leaves its report with SystemExit, and the driver records it. Bad
    input and divergence are recorded as failed and return normally, so Tune does not retry
    them; anything else is recorded and raised, and Tune retries it. Each round also writes
    where the attempt's start went to start.yml (`start_record`)."""
    start_without_keras()  # a worker of the sweep's own, before its first trial starts TensorFlow
    process = process_start()
    restart_fault_counts()
    import ray
    from easydict import EasyDict
    from ray import tune

    from zscrgan.run import loop

    cfg = EasyDict(trials[config["trial"]])
    run = Run.of(cfg)
    trial = Trial.read(run.logs)
    trial.start_attempt(socket.gethostname())
    start, before = time.monotonic(), trial["seconds"]
    node_id = ray.get_runtime_context().get_node_id()
    startup, em = {}, []

    def on_round(row, best, is_best):
        em.append(row["e_step_s"] + row["m_step_s"])
        record(rounds_done=row["round"])
        write_start(run.logs, start_record(process, startup, em))
        tune.report({**row, "score": row[run.selection_key], "best": best, "node_id": node_id})

    def record(**outcome):
        trial.set(**outcome, seconds=before + time.monotonic() - start)

    try:
        wait_for_lock(run.logs)
        result = loop.run(cfg, resume=True, on_round=on_round, progress=False, reuse_kernels=True, startup=startup)
    except (BadInput, Diverged) as e:
        record(status="failed", error=one_line(e))
    except Exception as e:
        record(status="failed", error=one_line(f"{type(e).__name__}: {e}"))
        raise
    else:
        record(status="finished", rounds_done=result["rounds"])
