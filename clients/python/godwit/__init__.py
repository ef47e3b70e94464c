"""godwit: the Python client of godwit's REST API (standard library only).

    import godwit

    c = godwit.Client()    # the local daemon: GODWIT_SOCKET or /run/godwit/godwit.sock
    spec = godwit.VMSpec(name="web1", cpus=1, memory="512MiB",
                         disks=[godwit.Disk(name="root", image="debian-12", size="10GiB")],
                         nics=[godwit.NIC(network="default")])
    c.wait(c.vms.create(spec, start=True), progress=lambda op: print(op.progress.message))
    for vm in c.vms.list():
        print(vm.name, vm.state)
    try:
        c.vms.get("nope")
    except godwit.NotFound as e:
        print(e.status, e.message)

The wire types (VMSpec, VM, Operation, ...) are dataclasses generated from
the daemon's /openapi.json; every call of the client names an operation of
that document. See examples/book_recipes.py.
"""

from ._generated import *  # noqa: F401,F403 - the wire types
from ._generated import MODELS, ROUTES
from ._model import Model, Route
from ._transport import DEFAULT_SOCKET
from .client import Client
from .errors import (APIError, BadRequest, Conflict, Forbidden, GodwitError, NotFound, OperationError,
                     ServerError, Timeout, TooLarge, Unauthorized, Unavailable, Unreachable)
from .events import EventStream

__version__ = "0.1.0"

__all__ = ["Client", "EventStream", "Model", "Route", "MODELS", "ROUTES", "DEFAULT_SOCKET",
           "GodwitError", "APIError", "BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict",
           "TooLarge", "ServerError", "Unavailable", "OperationError", "Unreachable", "Timeout"] + sorted(MODELS)
