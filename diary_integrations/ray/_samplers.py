"""System metrics for Ray Tune trials: each trial's child records the CPU, memory and GPUs of the process
its trainable runs in (the trial's actor and its children), as a DiaryLogger run records its own.

Nothing of ours runs in the trial's process (a plain trainable imports no diary code), so the driver
samples it by pid: on Tune's thread, `on_trial_start` asks the trial's actor where it runs
(`Trainable.get_current_ip_pid`, queued before Tune's first `train`, so it answers at once); the answer
is read on the callback's thread, which then starts a sampler for that pid writing into the trial's child.
A psutil pid names a process of this machine only: a trial on another node of the cluster is not sampled
(one debug line says so). The sampler stops, with a last reading flushed, before the child's end is
written.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import system_metrics

log = logging.getLogger("diary_integrations.ray")

LOCATE_TIMEOUT = 30.0  # seconds the callback's thread waits for a starting actor's (ip, pid)


def locate(trial: Any) -> Any:
    """On Tune's thread, when the trial starts: a Ray ObjectRef of the trial actor's (ip, pid), or None
    (no actor, or $DIARY_SYSTEM_METRICS off: nothing to sample). Never waits."""
    if system_metrics.switched_off():
        return None
    actor = getattr(getattr(trial, "temporary_state", None), "ray_actor", None)
    return None if actor is None else actor.get_current_ip_pid.remote()


class TrialSamplers:
    """The running samplers of one experiment's trials, by Tune trial id; used on the callback's thread."""

    def __init__(self, tracker: Any, interval: float) -> None:
        self.tracker = tracker
        self.interval = interval
        self.running: dict[str, Any] = {}

    def start(self, trial_id: str, child: int, where: Any) -> None:
        """Sample the trial's process into `child`, once `where` (from `locate`) says it runs on this node."""
        self.stop(trial_id)  # a retried trial runs in a new actor
        if where is None:
            return
        import ray

        ip, pid = ray.get(where, timeout=LOCATE_TIMEOUT)
        if ip != ray.util.get_node_ip_address():
            log.debug("diary: trial %s runs on %s, another node: its system metrics are not sampled", trial_id, ip)
            return
        # Its own MetricWriter (made from the tracker), flushed by stop(): the last reading is stored
        # before the child's end, which the trials' shared writer would not guarantee.
        self.running[trial_id] = system_metrics.start(self.tracker, child, pid=int(pid), interval=self.interval)

    def stop(self, trial_id: str) -> None:
        """Before the trial's child ends: the last reading, flushed; never raises."""
        system_metrics.stop_quietly(self.running.pop(trial_id, None))

    def stop_all(self) -> None:
        for trial_id in list(self.running):
            self.stop(trial_id)
