"""The client: one object per daemon, with a namespace per resource.

    import godwit
    c = godwit.Client()                      # GODWIT_SOCKET, else /run/godwit/godwit.sock
    c = godwit.Client(url="https://host1:8443", tls_dir="~/.config/godwit/host1")
    op = c.vms.create(godwit.VMSpec(name="web1", cpus=1, memory="512MiB"), start=True)
    c.wait(op, progress=print)               # raises godwit.OperationError if it failed

Every HTTP call goes through Client.call with an operationId of the API:
the route (method, path, parameters, body and answer types) comes from
_generated.ROUTES, made from the daemon's /openapi.json, and the Go test
next to this package fails when a call names an operation the API lacks.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import urllib.parse
from typing import Any, BinaryIO, Callable, Iterator, Optional, Union

from . import _generated as m
from ._generated import ROUTES
from ._model import Model, decode, encode
from ._transport import DEFAULT_SOCKET, Transport, from_environment, tls_context
from .errors import GodwitError, NotFound, OperationError, Timeout, Unreachable
from .events import EventStream

OpRef = Union[m.Operation, str]
Progress = Callable[[m.Operation], None]

FINAL_STATES = ("succeeded", "failed", "cancelled")


def _op_id(op: OpRef) -> str:
    return op.id if isinstance(op, m.Operation) else str(op)


def _body(model: type, value, **fields) -> Any:
    """A request body: value (a model or a dict) as is, or model(**fields)."""
    if value is not None:
        return value
    return model(**{k: v for k, v in fields.items() if v is not None})


class Client:
    """A client of one godwit daemon.

    socket: the daemon's unix socket (root only). url: https://HOST:PORT of
    a daemon started with --listen, with tls_dir (its ca.crt and, unless a
    token is given, the client.crt/client.key it issued) or ca_file,
    cert_file and key_file; token: a bearer token (godwit token create).
    Without arguments the CLI's environment is read: GODWIT_SOCKET, or
    GODWIT_HOST, GODWIT_TLS_DIR and GODWIT_TOKEN. timeout bounds each
    request that is not a wait or a stream.
    """

    def __init__(self, socket: Optional[str] = None, *, url: Optional[str] = None,
                 tls_dir: Optional[str] = None, ca_file: Optional[str] = None,
                 cert_file: Optional[str] = None, key_file: Optional[str] = None,
                 token: Optional[str] = None, timeout: Optional[float] = 60.0):
        if socket is None and url is None:
            env = from_environment()
            socket, url = env["socket"], env["url"]
            if url and not socket:
                tls_dir = tls_dir or env["tls_dir"]
                token = token or env["token"]
            else:
                url = None
        context = None
        if url:
            if tls_dir:
                tls_dir = os.path.expanduser(tls_dir)
                ca_file = ca_file or os.path.join(tls_dir, "ca.crt")
                if cert_file is None and os.path.exists(os.path.join(tls_dir, "client.crt")):
                    cert_file = os.path.join(tls_dir, "client.crt")
                    key_file = key_file or os.path.join(tls_dir, "client.key")
            if ca_file:
                try:
                    context = tls_context(ca_file, cert_file, key_file)
                except (OSError, ValueError) as e:
                    raise GodwitError("cannot load the TLS files for %s (ca %s, certificate %s): %s" % (url, ca_file, cert_file, e)) from e
        self._t = Transport(socket_path=None if url else (socket or DEFAULT_SOCKET), url=url,
                            context=context, token=token, timeout=timeout)
        self.vms = VMs(self)
        self.snapshots = Snapshots(self)
        self.backups = Backups(self)
        self.images = Images(self)
        self.networks = Networks(self)
        self.pools = Pools(self)
        self.volumes = Volumes(self)
        self.operations = Operations(self)
        self.hosts = Hosts(self)
        self.cluster = Cluster(self)
        self.tokens = Tokens(self)

    @property
    def where(self) -> str:
        """The socket path or URL this client talks to."""
        return self._t.where

    # -- the one way to call the API ---------------------------------------

    def _request(self, op_id: str, params: Optional[dict], query: Optional[dict], body, headers: Optional[dict]):
        """Builds (method, path, query, body bytes, headers) for op_id."""
        route = ROUTES[op_id]
        params = params or {}
        path = route.path
        for p in route.params:
            if params.get(p) in (None, ""):
                raise TypeError("%s needs %s" % (op_id, p))
            path = path.replace("{%s}" % p, urllib.parse.quote(str(params[p]), safe=""))
        extra = set(params) - set(route.params)
        if extra:
            raise TypeError("%s has no path parameter %s" % (op_id, ", ".join(sorted(extra))))
        q = {}
        for k, v in (query or {}).items():
            if k not in route.query:
                raise TypeError("%s has no query parameter %r" % (op_id, k))
            if v is None or v is False:
                continue
            q[k] = "true" if v is True else str(v)
        h = dict(headers or {})
        for k in h:
            if k not in route.headers and k not in ("Content-Type", "Content-Length", "Accept"):
                raise TypeError("%s has no header parameter %r" % (op_id, k))
        data = None
        if body is not None:
            if route.body is None:
                raise TypeError("%s takes no body" % op_id)
            if route.body == "bytes":
                data = body
                h.setdefault("Content-Type", "application/octet-stream")
            else:
                data = json.dumps(encode(body)).encode()
                h["Content-Type"] = "application/json"
        elif route.body_required:
            raise TypeError("%s needs a body (%s)" % (op_id, route.body))
        return route, path, q, data, h

    def call(self, op_id: str, params: Optional[dict] = None, query: Optional[dict] = None,
             body=None, headers: Optional[dict] = None, timeout: Optional[float] = -1.0):
        """Calls the API operation op_id (an operationId of /openapi.json)
        and returns its answer decoded into its model (None for no body)."""
        route, path, q, data, h = self._request(op_id, params, query, body, headers)
        raw = self._t.request(route.method, path, q, data, h, timeout)
        if route.content != "application/json" or not route.returns:
            return raw.decode("utf-8", "replace") if route.content == "text/plain" else None
        return decode(route.returns, json.loads(raw))

    def stream(self, op_id: str, params: Optional[dict] = None, query: Optional[dict] = None,
               body=None, headers: Optional[dict] = None, timeout: Optional[float] = None):
        """Calls op_id and returns (connection, response) to read as a
        stream; the caller closes the connection."""
        route, path, q, data, h = self._request(op_id, params, query, body, headers)
        return self._t.open(route.method, path, q, data, h, timeout)

    # -- operations ----------------------------------------------------------

    def wait(self, op: OpRef, progress: Optional[Progress] = None, timeout: Optional[float] = None,
             poll: float = 0.25) -> m.Operation:
        """Waits for an operation to end and returns it; raises
        OperationError when it failed or was cancelled, Timeout when it
        still runs after timeout seconds. With progress, polls every poll
        seconds and calls progress(op) on every change, first and last
        included; without, long-polls the daemon."""
        op_id = _op_id(op)
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            if progress is not None:
                cur = self.call("get-operation", {"id": op_id})
            else:
                left = 30 if deadline is None else max(1, min(30, math.ceil(deadline - time.monotonic())))
                cur = self.call("wait-operation", {"id": op_id}, {"timeout": left}, timeout=left + 30)
            if progress is not None and (last is None or cur.updated_at != last.updated_at or cur.state != last.state):
                progress(cur)
            last = cur
            if cur.state in FINAL_STATES:
                return _check(cur)
            if deadline is not None and time.monotonic() >= deadline:
                raise Timeout("operation %s (%s on %s) is still %s after %ss" % (cur.id, cur.kind, cur.target, cur.state, timeout))
            if progress is not None:
                time.sleep(poll if deadline is None else max(0, min(poll, deadline - time.monotonic())))

    # -- the daemon and its host ---------------------------------------------

    def host(self) -> m.Host:
        """This daemon's host: accelerator, libvirt, memory, pool."""
        return self.call("get-host")

    def checks(self) -> m.HealthReport:
        """Runs the health checks."""
        return self.call("host-checks")

    def stats(self, vm: Optional[str] = None) -> m.StatsSample:
        """Every VM's counters now (or one VM's); two samples give rates."""
        return self.call("stats", query={"vm": vm})

    def history(self, last: Optional[int] = None) -> m.UsageHistoryList:
        """Every running VM's usage history (a point per step, oldest first)."""
        return self.call("history", query={"last": last})

    def vm_history(self, name: str, last: Optional[int] = None) -> m.UsageHistory:
        """A VM's usage history: CPU in cores, resident memory, disk and network bytes per second."""
        return self.call("vm-history", {"name": name}, query={"last": last})

    def events(self, vm: Optional[str] = None, type: Optional[str] = None, after: Optional[int] = None,
               timeout: Optional[float] = None, reconnect: bool = True) -> EventStream:
        """The event stream, subscribed when this returns: an iterator of
        Event that ends after timeout seconds without one (None: never).
        vm and type ("vm" or "operation") filter it; after resumes after
        an event id."""
        # Checked here, where the route is known; the stream itself is GET /v1/events.
        self._request("events", None, {"vm": vm, "type": type, "after": after}, None, None)
        return EventStream(self._t, {"vm": vm, "type": type, "after": after}, after=after,
                           timeout=timeout, reconnect=reconnect)

    def audit(self, limit: Optional[int] = None) -> list[m.AuditEntry]:
        """The audit log, oldest first: every change request and how it ended."""
        return self.call("get-audit", query={"limit": limit}).entries or []

    def metrics(self) -> str:
        """The Prometheus metrics, as text."""
        return self.call("metrics")

    def healthz(self) -> bool:
        """Whether the daemon answers."""
        return self.call("healthz").get("status") == "ok"

    def ready(self) -> bool:
        """Whether libvirt answers and the host is brought up."""
        try:
            return self.call("readyz").status == "ok"
        except GodwitError as e:
            if getattr(e, "status", 0) == 503:
                return False
            raise

    def create_cert(self, name: str, scope: str = "admin") -> m.NewCert:
        """Issues a client certificate for the TCP API (its key is shown once)."""
        return self.call("create-cert", body=m.CertRequest(name=name, scope=scope))


def _check(op: m.Operation) -> m.Operation:
    if op.state == "failed":
        raise OperationError(op.error or "operation %s failed" % op.id, op.error_code or 500, op)
    if op.state == "cancelled":
        raise OperationError("operation %s was cancelled" % op.id, 409, op)
    return op


class _Resource:
    def __init__(self, client: Client):
        self._c = client


class VMs(_Resource):
    """VMs: client.vms."""

    def list(self) -> list[m.VM]:
        """Every VM, managed or not."""
        return self._c.call("list-vms").vms or []

    def get(self, name: str) -> m.VM:
        """One VM (NotFound if there is none)."""
        return self._c.call("get-vm", {"name": name})

    def create(self, spec: Union[m.VMSpec, dict], start: bool = False, host: Optional[str] = None) -> m.Operation:
        """Starts creating a VM from its spec (a VMSpec or its JSON dict);
        in a cluster on host, or where placement picks when host is None."""
        return self._c.call("create-vm", query={"start": start, "host": host}, body=spec)

    def place(self, spec: Union[m.VMSpec, dict], host: Optional[str] = None) -> m.PlacementDecision:
        """Where create would place the VM, with every host's verdict
        (vm create --dry-run); creates nothing."""
        return self._c.call("place-vm", query={"host": host}, body=spec)

    def apply(self, spec: Union[m.VMSpec, dict], start: bool = False) -> m.Operation:
        """Makes a VM match spec, creating it when missing; the operation's
        result says what changed."""
        name = spec.name if isinstance(spec, Model) else spec["name"]
        return self._c.call("apply-vm", {"name": name}, {"start": start}, body=spec)

    def set(self, name: str, change: Union[m.VMSet, dict]) -> m.Operation:
        """Changes a VM's memory, cpus, pin or a disk's limits, live where
        QEMU can; the operation's result says which changes were live."""
        return self._c.call("set-vm", {"name": name}, body=change)

    def delete(self, name: str, keep_disks: bool = False, force: bool = False) -> m.Operation:
        """Starts deleting a VM (force: a running one too)."""
        return self._c.call("delete-vm", {"name": name}, {"keepDisks": keep_disks, "force": force})

    def start(self, name: str) -> m.Operation:
        """Starts a stopped VM; the result's consoleOffset is where this boot's console output begins."""
        return self._c.call("start-vm", {"name": name})

    def stop(self, name: str, force: bool = False, timeout: Optional[int] = None) -> m.Operation:
        """Shuts a VM down (ACPI, waiting timeout seconds), or pulls the plug with force."""
        return self._c.call("stop-vm", {"name": name}, body=m.StopRequest(force=force or None, timeout_seconds=timeout))

    def reboot(self, name: str) -> m.Operation:
        """Reboots a running VM (ACPI)."""
        return self._c.call("reboot-vm", {"name": name})

    def kill(self, name: str) -> m.VM:
        """Destroys a running VM at once."""
        return self._c.call("kill-vm", {"name": name})

    def pause(self, name: str) -> m.VM:
        """Pauses a VM's vCPUs."""
        return self._c.call("pause-vm", {"name": name})

    def resume(self, name: str) -> m.VM:
        """Resumes a paused VM."""
        return self._c.call("resume-vm", {"name": name})

    def console(self, name: str, lines: Optional[int] = None, offset: Optional[int] = None) -> str:
        """The serial console's log so far (the last lines, or from byte offset)."""
        return self._c.call("vm-console", {"name": name}, {"lines": lines, "offset": offset})

    def follow_console(self, name: str, lines: Optional[int] = None, offset: Optional[int] = None,
                       timeout: Optional[float] = None) -> Iterator[str]:
        """The console's lines as they come, until the caller stops iterating
        (close the iterator to drop the connection). timeout: raise Timeout
        when the guest prints nothing for that long (None: wait for ever)."""
        conn, resp = self._c.stream("vm-console", {"name": name}, {"follow": True, "lines": lines, "offset": offset},
                                    timeout=timeout)
        try:
            while True:
                try:
                    line = resp.readline()
                except TimeoutError:
                    raise Timeout("the console of %s printed nothing for %ss" % (name, timeout)) from None
                if not line:
                    return
                yield line.decode("utf-8", "replace")
        finally:
            conn.close()

    def stats(self, name: str) -> m.VMStats:
        """One VM's counters now."""
        for s in self._c.stats(vm=name).vms or []:
            if s.name == name:
                return s
        raise NotFound("no stats for VM %s" % name)

    def attach_disk(self, name: str, volume: str, disk: Optional[str] = None) -> m.VM:
        """Attaches an existing volume (POOL/VOLUME), hot-plugged when the VM runs."""
        return self._c.call("attach-disk", {"name": name}, body=m.DiskAttach(volume=volume, name=disk))

    def detach_disk(self, name: str, disk: str) -> m.VM:
        """Detaches an attached volume."""
        return self._c.call("detach-disk", {"name": name, "disk": disk})

    def attach_nic(self, name: str, network: str, mac: Optional[str] = None, model: Optional[str] = None) -> m.Operation:
        """Plugs a NIC on network into the VM, running or stopped."""
        return self._c.call("attach-nic", {"name": name}, body=m.NIC(network=network, mac=mac, model=model))

    def detach_nic(self, name: str, nic: str) -> m.Operation:
        """Unplugs a NIC, named by its MAC or its network."""
        return self._c.call("detach-nic", {"name": name, "nic": nic})

    def adopt(self, name: str, dry_run: bool = False) -> m.AdoptResult:
        """Takes a libvirt domain godwit did not define under management,
        changing nothing in it; .vm.spec is what godwit derived and .vm.kept
        what the spec does not express (left in the domain as it is). With
        dry_run nothing is recorded."""
        return self._c.call("adopt-vm", {"name": name}, body=m.AdoptRequest(dry_run=dry_run or None))

    def release(self, name: str) -> m.VM:
        """Hands an adopted VM back to plain libvirt: godwit forgets it, the
        domain stays as it is."""
        return self._c.call("release-vm", {"name": name})

    def migrate(self, name: str, to: Optional[str] = None, request: Union[m.MigrateRequest, dict, None] = None,
                **options) -> m.Operation:
        """Moves a VM to the peer host to: live when it runs, cold when not.
        options are MigrateRequest's fields (mode, policy, max_downtime_ms,
        bandwidth_mi_b, parallel, tls, timeout_seconds, ...); the result is
        a migration report."""
        return self._c.call("migrate-vm", {"name": name}, body=_body(m.MigrateRequest, request, to=to, **options))


class Snapshots(_Resource):
    """A VM's snapshots: client.snapshots."""

    def create(self, vm: str, name: str, description: Optional[str] = None, memory: bool = False,
               disk_only: bool = False, quiesce: bool = False) -> m.Operation:
        """Takes a snapshot: with memory, reverting resumes the guest where it
        was; disk_only makes external qcow2 overlays."""
        req = m.SnapshotRequest(name=name, description=description, memory=memory or None,
                                disk_only=disk_only or None, quiesce=quiesce or None)
        return self._c.call("create-snapshot", {"name": vm}, body=req)

    def list(self, vm: str) -> list[m.Snapshot]:
        """A VM's snapshots, each naming its parent."""
        return self._c.call("list-snapshots", {"name": vm}).snapshots or []

    def get(self, vm: str, name: str) -> m.Snapshot:
        return self._c.call("get-snapshot", {"name": vm, "snapshot": name})

    def revert(self, vm: str, name: str) -> m.Operation:
        return self._c.call("revert-snapshot", {"name": vm, "snapshot": name})

    def delete(self, vm: str, name: str) -> m.Operation:
        return self._c.call("delete-snapshot", {"name": vm, "snapshot": name})


class Backups(_Resource):
    """Backups and their schedules: client.backups."""

    def create(self, vm: str, full: bool = False) -> m.Operation:
        """Backs a VM up: incremental when its last checkpoint allows, unless full."""
        return self._c.call("create-backup", {"name": vm}, body=m.BackupRequest(full=full or None))

    def list(self, vm: Optional[str] = None) -> list[m.Backup]:
        """Backups, oldest first (only vm's, given one)."""
        return self._c.call("list-backups", query={"vm": vm}).backups or []

    def get(self, id: str) -> m.Backup:
        """A backup by id, or a VM's newest by the VM's name."""
        return self._c.call("get-backup", {"id": id})

    def restore(self, id: str, as_name: Optional[str] = None, to: Optional[str] = None, start: bool = False) -> m.Operation:
        """Recreates a VM from a backup (as another name; on peer host to)."""
        return self._c.call("restore-backup", {"id": id}, body=m.RestoreRequest(as_=as_name, to=to, start=start or None))

    def verify(self, ids: Optional[list] = None) -> m.Operation:
        """Re-hashes backups' chunks (all, or ids); the result reports damage."""
        return self._c.call("verify-backups", body=m.VerifyRequest(ids=ids))

    def prune(self, vm: Optional[str] = None, keep_last: Optional[int] = None, keep_daily: Optional[int] = None,
              keep_weekly: Optional[int] = None, dry_run: bool = False) -> m.Operation:
        """Removes the backups a retention policy does not keep."""
        return self._c.call("prune-backups", body=m.PruneRequest(vm=vm, keep_last=keep_last, keep_daily=keep_daily,
                                                                 keep_weekly=keep_weekly, dry_run=dry_run or None))

    def schedules(self) -> list[m.BackupSchedule]:
        return self._c.call("list-backup-schedules").schedules or []

    def set_schedule(self, vm: str, every: str, keep_last: Optional[int] = None, keep_daily: Optional[int] = None,
                     keep_weekly: Optional[int] = None) -> m.BackupSchedule:
        """Backs vm up every (a Go duration: 24h, 90m), keeping what the policy says."""
        req = m.ScheduleRequest(every=every, keep_last=keep_last, keep_daily=keep_daily, keep_weekly=keep_weekly)
        return self._c.call("set-backup-schedule", {"name": vm}, body=req)

    def delete_schedule(self, vm: str) -> None:
        self._c.call("delete-backup-schedule", {"name": vm})


class Images(_Resource):
    """The image catalog: client.images."""

    def list(self) -> list[m.Image]:
        return self._c.call("list-images").images or []

    def get(self, name: str) -> m.Image:
        return self._c.call("get-image", {"image": name})

    def import_(self, name: str, url: Optional[str] = None, path: Optional[str] = None,
                sha256: Optional[str] = None, boot: Optional[m.Boot] = None) -> m.Operation:
        """Imports an image from a URL or a file on the daemon's host."""
        return self._c.call("import-image", body=m.ImageImport(name=name, url=url, path=path, sha256=sha256, boot=boot))

    def build(self, name: str, distro: str = "debian", suite: Optional[str] = None, size: Optional[str] = None,
              mirror: Optional[str] = None) -> m.Operation:
        """Builds an image from a distribution's packages (debootstrap)."""
        return self._c.call("build-image", body=m.ImageBuild(name=name, distro=distro, suite=suite, size=size, mirror=mirror))

    def convert(self, name: str, format: str, new_name: str) -> m.Operation:
        """Converts an image (raw <-> qcow2) into a new one."""
        return self._c.call("convert-image", {"image": name}, body=m.ImageConvert(format=format, name=new_name))

    def delete(self, name: str) -> None:
        self._c.call("delete-image", {"image": name})


class Networks(_Resource):
    """Networks: client.networks."""

    def list(self) -> list[m.Network]:
        return self._c.call("list-networks").networks or []

    def get(self, name: str) -> m.Network:
        """A network with its DHCP leases."""
        return self._c.call("get-network", {"name": name})

    def create(self, spec: Union[m.NetworkSpec, dict, None] = None, **fields) -> m.Network:
        """Creates a network from a NetworkSpec, or from its fields (name, type, subnet, ...)."""
        return self._c.call("create-network", body=_body(m.NetworkSpec, spec, **fields))

    def delete(self, name: str) -> None:
        self._c.call("delete-network", {"name": name})


class Pools(_Resource):
    """Storage pools: client.pools."""

    def list(self) -> list[m.Pool]:
        return self._c.call("list-pools").pools or []

    def get(self, name: str) -> m.Pool:
        return self._c.call("get-pool", {"pool": name})

    def create(self, spec: Union[m.PoolCreate, dict, None] = None, **fields) -> m.Pool:
        """Creates a pool from a PoolCreate, or its fields (name, type, path, ...)."""
        return self._c.call("create-pool", body=_body(m.PoolCreate, spec, **fields))

    def delete(self, name: str) -> None:
        self._c.call("delete-pool", {"pool": name})


class Volumes(_Resource):
    """Volumes: client.volumes."""

    def list(self, pool: Optional[str] = None) -> list[m.Volume]:
        return self._c.call("list-volumes", query={"pool": pool}).volumes or []

    def get(self, pool: str, name: str) -> m.Volume:
        return self._c.call("get-volume", {"pool": pool, "volume": name})

    def create(self, pool: str, name: str, size: str, format: Optional[str] = None) -> m.Volume:
        """Creates a blank volume of size (with a unit: 10GiB)."""
        return self._c.call("create-volume", {"pool": pool}, body=m.VolumeCreate(name=name, size=size, format=format))

    def resize(self, pool: str, name: str, size: str) -> m.Volume:
        """Grows a volume (online when a running VM uses it)."""
        return self._c.call("resize-volume", {"pool": pool, "volume": name}, body=m.VolumeResize(size=size))

    def clone(self, pool: str, name: str, new_name: str, to_pool: Optional[str] = None) -> m.Operation:
        return self._c.call("clone-volume", {"pool": pool, "volume": name}, body=m.VolumeClone(name=new_name, pool=to_pool))

    def delete(self, pool: str, name: str) -> None:
        self._c.call("delete-volume", {"pool": pool, "volume": name})

    def upload(self, pool: str, name: str, data: Union[bytes, BinaryIO], size: Optional[int] = None,
               create: bool = False, format: Optional[str] = None, sha256: Optional[str] = None) -> m.Transfer:
        """Writes a volume's bytes from data (bytes, or a file opened "rb" of
        size bytes); create makes the volume (format raw or qcow2)."""
        if isinstance(data, (bytes, bytearray)):
            size = len(data)
        elif size is None:
            size = os.fstat(data.fileno()).st_size
        headers = {"Content-Length": str(size)}
        if sha256:
            headers["X-Godwit-Sha256"] = sha256
        return self._c.call("upload-volume", {"pool": pool, "volume": name}, {"create": create, "format": format},
                            body=data, headers=headers, timeout=None)

    def download(self, pool: str, name: str, out: BinaryIO) -> m.Transfer:
        """Writes a volume's bytes to out; returns how many and their SHA-256."""
        started = time.monotonic()
        conn, resp = self._c.stream("download-volume", {"pool": pool, "volume": name})
        h, n = hashlib.sha256(), 0
        try:
            want = resp.getheader("X-Godwit-Size")
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
                out.write(chunk)
                n += len(chunk)
        except OSError as e:
            raise Unreachable("the download of %s/%s broke off after %d bytes: %s" % (pool, name, n, e)) from e
        finally:
            conn.close()
        if want is not None and int(want) != n:
            raise GodwitError("the download of %s/%s broke off: %d of %s bytes" % (pool, name, n, want))
        return m.Transfer(bytes=n, sha256=h.hexdigest(), elapsed_ns=int((time.monotonic() - started) * 1e9))


class Operations(_Resource):
    """Operations (long jobs): client.operations."""

    def list(self, target: Optional[str] = None, active: bool = False) -> list[m.Operation]:
        """Operations, newest first (on target, e.g. "vm/web1"; only running ones with active)."""
        return self._c.call("list-operations", query={"target": target, "active": active}).operations or []

    def get(self, op: OpRef) -> m.Operation:
        return self._c.call("get-operation", {"id": _op_id(op)})

    def wait(self, op: OpRef, progress: Optional[Progress] = None, timeout: Optional[float] = None) -> m.Operation:
        """Client.wait: waits for op to end; raises OperationError if it failed."""
        return self._c.wait(op, progress=progress, timeout=timeout)

    def cancel(self, op: OpRef) -> m.Operation:
        return self._c.call("cancel-operation", {"id": _op_id(op)})


class Hosts(_Resource):
    """This host and its peers: client.hosts."""

    def list(self) -> m.PeerList:
        """This host (.self) and its peers (.peers), each asked whether it answers."""
        return self._c.call("list-hosts")

    def get(self) -> m.Host:
        """This daemon's host."""
        return self._c.call("get-host")

    def tune(self, profile: Optional[str] = None) -> m.TuneReport:
        """Checks the host's settings for VMs against a profile (virtual-host)."""
        return self._c.call("get-host-tune", query={"profile": profile})

    def tune_apply(self, dry_run: bool = False, persist: bool = False, profile: Optional[str] = None) -> m.TuneResult:
        """Sets the profile's runtime settings (dry_run: only says which);
        persist also writes them for the next boot."""
        return self._c.call("apply-host-tune", body=m.TuneRequest(profile=profile, dry_run=dry_run or None, persist=persist or None))

    def tune_revert(self) -> m.TuneResult:
        """Puts back the settings tune_apply changed."""
        return self._c.call("revert-host-tune")

    def join_token(self, ttl_seconds: Optional[int] = None) -> m.JoinToken:
        """A one-time token another host joins this one with."""
        return self._c.call("create-join-token", body=m.JoinTokenRequest(ttl_seconds=ttl_seconds))

    def add(self, name: str, url: str, token: str) -> m.Peer:
        """Joins the host at url, with a join token from it."""
        return self._c.call("add-host", body=m.PeerAdd(name=name, url=url, token=token))

    def remove(self, name: str) -> None:
        """Forgets a peer."""
        self._c.call("remove-host", {"name": name})

    def evacuate(self, to: Optional[str] = None, parallel: Optional[int] = None, **options) -> m.Operation:
        """Moves every running VM off this host; options are MigrateRequest's fields."""
        return self._c.call("evacuate-host", body=m.EvacuateRequest(to=to, parallel=parallel, **options))


class Cluster(_Resource):
    """Several hosts as one on embedded etcd: client.cluster."""

    def status(self) -> m.ClusterStatus:
        """Members, leader, health, and every host's heartbeat and lease."""
        return self._c.call("cluster-status")

    def init(self, max_voters: Optional[int] = None) -> m.ClusterStatus:
        """Makes this host the first member of a new cluster (its VMs stay)."""
        return self._c.call("cluster-init", body=m.ClusterInit(max_voters=max_voters))

    def join(self, url: str, token: str) -> m.ClusterStatus:
        """Joins the cluster of the host at url, with a join token from it."""
        return self._c.call("cluster-join", body=m.ClusterJoin(url=url, token=token))

    def remove(self, name: str, force: bool = False) -> None:
        """Takes a dead host out of the cluster; force says it is down even
        though its daemon stopped cleanly leaving HA VMs running there
        (they then restart on other hosts)."""
        self._c.call("cluster-remove-host", {"name": name}, {"force": force})

    def drain(self, name: str, parallel: Optional[int] = None, **options) -> m.Operation:
        """Marks host name unschedulable and moves its VMs where placement
        picks; options are MigrateRequest's fields."""
        return self._c.call("drain-host", {"name": name}, body=m.EvacuateRequest(parallel=parallel, **options))

    def undrain(self, name: str) -> None:
        """Makes a drained host schedulable again."""
        self._c.call("undrain-host", {"name": name})


class Tokens(_Resource):
    """API tokens for the TCP API: client.tokens."""

    def create(self, name: str, scope: str = "read") -> m.NewToken:
        """A new token; its .secret is shown only now."""
        return self._c.call("create-token", body=m.TokenRequest(name=name, scope=scope))

    def list(self) -> list[m.Token]:
        return self._c.call("list-tokens").tokens or []

    def revoke(self, id: str) -> m.Token:
        """Revokes a token by id or name."""
        return self._c.call("revoke-token", {"id": id})
