"""Liveness and readiness of `keras-dcgan serve`, for orchestrators (the Open Inference Protocol's health routes).

Live: the process answers. Ready: it should be sent new requests, that is, the model is loaded
in every process that accepts connections, and no drain has begun. A server process answers
only once its app, and so its model, is built; what it cannot see on its own is its peers:

- A lone server process (`--workers 1`) is ready from its first answer until a stop signal.
- Worker processes share one state file written by the supervising process, which alone knows
  them all: STARTING until every worker has loaded the model and serves, READY then, DRAINING
  from the stop signal on. A worker also stops being ready as soon as it is itself told to stop
  (SIGHUP replaces the workers one by one: a retiring worker drains while its peers serve).
  A worker that crashes and is replaced leaves the state READY: its peers still serve, and
  taking the whole server out of rotation for one restart would turn away what they can answer.

The state file is replaced atomically, so a reader never sees half a word.
"""

import pathlib

from keras_dcgan.atomic_write import write_text

STARTING = "starting"
READY = "ready"
DRAINING = "draining"
_REASONS = {
    STARTING: "the model is still loading in some worker process",
    DRAINING: "the server is draining: it finishes the requests it has and takes no new ones",
}


class ServerHealth:
    """This process's view of readiness; `state_file` is the supervisor's shared state, when there is one."""

    def __init__(self, state_file=None):
        self.state_file = None if state_file is None else pathlib.Path(state_file)
        self.draining = False

    def begin_drain(self):
        """From now on, not ready: called on the stop signal, before any request is turned away."""
        self.draining = True

    def not_ready_reason(self):
        """None when ready, else why not (for the 503's message)."""
        if self.draining:
            return _REASONS[DRAINING]
        if self.state_file is None:
            return None
        try:
            state = self.state_file.read_text()
        except OSError:
            return _REASONS[STARTING]  # written before the first worker starts; gone only once the supervisor has stopped
        return None if state == READY else _REASONS.get(state, _REASONS[STARTING])


def write_state(state_file, state):
    """The supervisor's word to its workers: STARTING, READY or DRAINING."""
    write_text(state_file, state)
