"""The sweep's driver on Ray Tune: Ray started here or reached at a cluster, the trials handed
to Tune, and what the driver records of them (a stop by the scheduler, a process that died
more often than it may be retried). The console shows the sweep's own lines; Tune's tables and
Ray's messages go to DIR/tune.log.
"""
import contextlib
import logging
import os
import socket
import sys
import time

from zscrgan.errors import one_line
from zscrgan.files import fault_point
from zscrgan.results.history import metric_name
from zscrgan.results.run import Run
from zscrgan.results.trials import Trial
from zscrgan.sweeps.plan import SweepError
from zscrgan.sweeps.trial import run_trial

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # zscrgan/, sent to every worker
MAX_RETRIES = 3          # restarts of a trial whose process died, each from its latest checkpoint
THREAD_WAIT_S = 60       # how long a worker given its next trial waits for the last one's thread to end
                         # (Tune's default, 2 s, then fails the new trial; a stopped trial takes a moment)
CONNECT_TIMEOUT_S = 5    # how long --address may take to answer before the sweep gives up
TUNE_LOG = "tune.log"


def cluster_address(address):
    """(host, port) of the Ray cluster `--address` names. 'auto' is found as ray.init finds
    it: $RAY_ADDRESS, else the address `ray start` left on this machine."""
    given = address
    if address == "auto":
        from ray._private.utils import read_ray_address
        address = os.environ.get("RAY_ADDRESS") or read_ray_address()
        if not address:
            raise SweepError("--address auto: no Ray cluster was started on this machine "
                             "(start one with `ray start --head`, or give HOST:PORT)")
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"--address {given}: expected 'auto' or HOST:PORT")
    return host, int(port)


def check_address(address):
    """Refuse at once an address where no Ray answers (ray.init would retry for minutes)."""
    host, port = cluster_address(address)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise SweepError(f"--address {address}: no Ray answers at {host}:{port} ({e.strerror or e}); "
                         "is the cluster up (`ray status`)?")


def start_ray(address, resources):
    """Start (or connect to) Ray with this package on every worker (a trial's config comes
    resolved from the driver, so workers need no configs/)."""
    import ray
    runtime_env = {"py_modules": [PACKAGE_DIR],
                   "env_vars": {"TF_CPP_MIN_LOG_LEVEL": "3", "TUNE_FUNCTION_THREAD_TIMEOUT_S": str(THREAD_WAIT_S)}}
    local = {} if address else {"include_dashboard": False}
    try:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False,
                 logging_level=logging.WARNING, **local)
    except ConnectionError as e:
        raise SweepError(f"--address {address}: {one_line(e)}")
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    if not any(n.get("CPU", 0) >= resources["cpus"] and n.get("GPU", 0) >= resources["gpus"] for n in nodes):
        ray.shutdown()
        have = ", ".join(f"{n.get('CPU', 0):g} CPUs and {n.get('GPU', 0):g} GPUs" for n in nodes)
        hint = ("; set resources: {gpus: 0} to run the trials on CPUs"
                if resources["gpus"] and not any(n.get("GPU", 0) for n in nodes) else "")
        raise SweepError(f"resources: no Ray node has {resources['cpus']} CPUs and {resources['gpus']:g} GPUs "
                         f"(the nodes have {have}){hint}")


_consoles = []  # where say() writes while ray_output_to sends sys.stdout to the log


def say(text):
    """Print one of the sweep's own lines on the console."""
    print(text, file=_consoles[-1] if _consoles else sys.stdout, flush=True)


@contextlib.contextmanager
def ray_output_to(path):
    """Send what Ray and Tune print in this process to the file `path`: Tune's status tables,
    the raylet's banners about dead workers (printed to sys.stdout) and the `ray` loggers;
    say() still prints on the console."""
    ray_logger = logging.getLogger("ray")
    with open(path, "a", buffering=1) as log:
        saved, ray_logger.handlers = ray_logger.handlers, [logging.StreamHandler(log)]
        _consoles.append(sys.stdout)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            _consoles.pop()
            ray_logger.handlers = saved


def error_line(text):
    """The first line of the last failure in the error file Tune keeps for a trial."""
    lines = [line for line in text.splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if line.startswith("Failure # ")]
    i = starts[-1] + 1 if starts else 0
    return one_line(lines[i]) if i < len(lines) else "its process died"


def describe(key, cfg, trial):
    """A trial's console line: its status, rounds, time and the scores of its selected round."""
    line = f"[{trial['status']}] {key}: {trial['rounds_done']} rounds, {trial['seconds']:.0f} s"
    run = Run.of(cfg)
    scores = run.scores(run.selected())
    if scores["best"] is not None:
        line += f", best {metric_name(run.select, run.top_k)} {scores['best']:.4f}"
        if run.select == "val":
            line += f" (test Prec@{run.top_k} {scores['test_at_best']:.4f})"
    return line + (f": {trial['error']}" if trial["error"] else "")


def recorder(configs):
    """A Tune callback that prints the sweep's lines and records in the driver what a trial's
    own process cannot: a stop by the scheduler, and a process that died more often than it
    may be retried."""
    from ray import tune

    class Recorder(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            say(f"[started] {trial.config['trial']}")

        def on_trial_recover(self, iteration, trials, trial, **info):
            say(f"[retrying] {trial.config['trial']}: its process died; resuming from its latest checkpoint")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            fault_point("sweep:result")

        def on_trial_complete(self, iteration, trials, trial, **info):
            key = trial.config["trial"]
            run = Run.of(configs[key])
            status = Trial.read(run.logs)
            if status["status"] == "running":  # stopped by the scheduler after a round
                status.end_by_scheduler(run.rounds_done(), run.cfg["epochs"])
            say(describe(key, configs[key], status))

        def on_trial_error(self, iteration, trials, trial, **info):
            key = trial.config["trial"]
            status = Trial.read(Run.of(configs[key]).logs)
            error = status["error"] if status["status"] == "failed" and status["error"] else \
                error_line(str(trial.get_error() or ""))
            status.fail(f"{error} (after {status['attempts']} attempts)")
            say(describe(key, configs[key], status))

    return Recorder()


def tune_trials(configs, todo, out, resources, max_concurrent, scheduler_name):
    """Run the trials `todo` on Tune; each records its own outcome in status.yml."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    epochs = max(configs[k]["epochs"] for k in todo) or 1
    scheduler = (ASHAScheduler(time_attr="round", metric="score", mode="max", max_t=epochs,
                               grace_period=max(1, epochs // 10), reduction_factor=3)
                 if scheduler_name == "asha" else FIFOScheduler())
    trainable = tune.with_resources(tune.with_parameters(run_trial, trials={k: configs[k] for k in todo}),
                                    {"cpu": resources["cpus"], "gpu": resources["gpus"]})
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(todo)},
        # reuse_actors: a worker process (and its TensorFlow, and its kept kernels) runs the
        # next trial; every trial of a sweep asks for the same CPUs, so the same threads.
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, scheduler=scheduler, reuse_actors=True,
                                    trial_name_creator=lambda t: t.config["trial"],
                                    trial_dirname_creator=lambda t: t.config["trial"].replace("/", "_")),
        run_config=tune.RunConfig(storage_path=os.path.join(out, "ray"), name=time.strftime("tune-%Y%m%d-%H%M%S"),
                                  verbose=1, callbacks=[recorder(configs)],
                                  failure_config=tune.FailureConfig(max_failures=MAX_RETRIES)))
    tuner.fit()
