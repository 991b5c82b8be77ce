"""The relay's tests send the check-in kinds (reminder, digest) as the worker does: the worker
imports app.checkins.outgoing (through jobs), which registers their render contexts; so do these
tests, whatever ran before them."""

import app.checkins.outgoing  # noqa: F401
