package daemon

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/godwit-project/godwit/api"
)

// This file completes the OpenAPI document huma builds from the route
// table, in one place: the error responses of every operation (from its
// shape and access level), how callers authenticate, where the API is
// served, and examples of the VM spec. tools/openapi-lint holds the
// linter the tests run on the result (openapi_lint_test.go).

// apiErrors are the statuses the API answers with an error, with when.
// Every handler error goes through toStatus, which makes one of these.
var apiErrors = []struct {
	code    int
	name    string // the component's name
	when    string
	example string
}{
	{http.StatusBadRequest, "BadRequest", "The request is wrong: a parameter, or a field of the body, which the message names first (\"cpus: ...\"); several problems are joined by \"; \".", "cpus: missing or 0 (a VM needs at least one virtual CPU, e.g. cpus: 1)"},
	{http.StatusUnauthorized, "Unauthorized", "Over TCP, no valid credentials: a client certificate from the daemon's CA, or a bearer token that exists and is not revoked.", "the bearer token is invalid or revoked"},
	{http.StatusForbidden, "Forbidden", "The credentials do not allow this: a read-only token or certificate asking for a change, or a user other than root on the unix socket.", "token:ci (scope read) may not POST /v1/vms/web1/start: it needs the admin scope"},
	{http.StatusNotFound, "NotFound", "What the path names (a VM, an operation, an image, a backup...) does not exist.", "vm web1 not found"},
	{http.StatusConflict, "Conflict", "The resource is in the wrong state for this (stop a running VM first, say), or the name is taken.", "vm web1 is running; stop it first, or delete with --force"},
	{http.StatusRequestEntityTooLarge, "TooLarge", "The request body is over 1 MiB.", "request body is too large limit=1048576 bytes"},
	{http.StatusInternalServerError, "InternalError", "The daemon failed; the message says where.", "write state: disk full"},
	{http.StatusServiceUnavailable, "Unavailable", "libvirt does not answer, this host is not brought up yet, or (a host of a cluster) the cluster store has no quorum as this host sees it: it takes no change then, and the message names the voters it cannot reach; try again.", "cluster store has no quorum since 14:50:03 UTC (12s): 1 of 3 voters reachable, 2 needed (unreachable: hostb, hostc): etcd store: txn: unavailable"},
}

// errorStatuses are the errors an operation can answer, from its shape:
// any request can fail (500) or meet libvirt down (503); parameters and
// bodies can be wrong (400); a JSON body can be too large (413; streamed
// bodies are not capped); a path names something that may not exist (404);
// what changes state can conflict (409); a route that needs credentials
// refuses missing (401) or weak ones (403).
func errorStatuses(o *huma.Operation, access Access) []int {
	codes := []int{http.StatusInternalServerError}
	if o.Path != "/healthz" {
		codes = append(codes, http.StatusServiceUnavailable)
	}
	var inPath, inRest bool
	for _, p := range o.Parameters {
		if p.In == "path" {
			inPath = true
		} else {
			inRest = true
		}
	}
	if inPath || inRest || o.RequestBody != nil {
		codes = append(codes, http.StatusBadRequest)
	}
	if o.RequestBody != nil && o.RequestBody.Content["application/json"] != nil {
		codes = append(codes, http.StatusRequestEntityTooLarge)
	}
	if inPath {
		codes = append(codes, http.StatusNotFound)
	}
	if o.Method != http.MethodGet {
		codes = append(codes, http.StatusConflict)
	}
	if access != Public {
		codes = append(codes, http.StatusUnauthorized, http.StatusForbidden)
	}
	slices.Sort(codes)
	return codes
}

// Security schemes: how a caller over TCP says who it is. The unix socket
// needs none (it serves root only).
const (
	schemeToken      = "token"
	schemeClientCert = "clientCert"
	schemePeerCert   = "peerCert"
)

// security is what an operation of an access level asks for; scopes are
// the roles OpenAPI 3.1 lets any scheme name.
func security(access Access) []map[string][]string {
	switch access {
	case Public:
		return []map[string][]string{}
	case Peer:
		return []map[string][]string{{schemePeerCert: {}}}
	}
	scope := []string{string(access)}
	return []map[string][]string{{schemeToken: scope}, {schemeClientCert: scope}}
}

// documentAPI completes the document after every route is registered
// (each with its access level in its metadata).
func documentAPI(oapi *huma.OpenAPI) {
	if oapi.Components.Responses == nil {
		oapi.Components.Responses = map[string]*huma.Response{}
	}
	schemas := oapi.Components.Schemas.Map()
	schemas["StatusError"].Description = "Every error: the message and the HTTP status, also in the body."
	schemas["VMSpec"].Description = "A VM: what godwit vm create -f reads from YAML. Unknown fields are errors."
	schemas["VMSpec"].Examples = []any{vmSpecExamples["image"].spec}
	byCode := map[int]string{}
	for _, e := range apiErrors {
		byCode[e.code] = e.name
		oapi.Components.Responses[e.name] = &huma.Response{
			Description: e.when,
			Content: map[string]*huma.MediaType{"application/json": {
				Schema:  &huma.Schema{Ref: "#/components/schemas/StatusError"},
				Example: api.StatusError{Message: e.example, Code: e.code},
			}},
		}
	}
	oapi.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		schemeToken: {Type: "http", Scheme: "bearer",
			Description: "An API token (godwit token create), sent as Authorization: Bearer gwt_...; over TLS only. Its scope, read or admin, is what it may do."},
		schemeClientCert: {Type: "mutualTLS",
			Description: "A client certificate the daemon's CA issued (godwit cert create, or the one in its tls directory); its OU may limit it to read."},
		schemePeerCert: {Type: "mutualTLS",
			Description: "Another host's daemon, joined as a peer, with its own certificate (daemon to daemon)."},
	}
	oapi.Servers = []*huma.Server{{
		URL: "https://{host}:{port}",
		Description: "A daemon's TCP API (godwit daemon --listen HOST:PORT). The same API is served on the daemon's unix socket " +
			"(/run/godwit/godwit.sock by default, as http://godwit/...) to root, without credentials.",
		Variables: map[string]*huma.ServerVariable{
			"host": {Default: "localhost", Description: "The daemon's host."},
			"port": {Default: "8443", Description: "The port of --listen."},
		},
	}}
	tags := map[string]bool{}
	for _, item := range oapi.Paths {
		for _, o := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Patch} {
			if o == nil {
				continue
			}
			acc, _ := o.Metadata["access"].(Access)
			delete(o.Responses, "default")
			for _, code := range errorStatuses(o, acc) {
				o.Responses[strconv.Itoa(code)] = &huma.Response{Ref: "#/components/responses/" + byCode[code]}
			}
			o.Security = security(acc)
			if o.Method == http.MethodGet {
				markStale(o)
			}
			for _, t := range o.Tags {
				tags[t] = true
			}
			if o.Description == "" {
				o.Description = describeOp(o, acc)
			}
		}
	}
	oapi.Tags = nil
	for _, t := range slices.Sorted(maps.Keys(tags)) {
		oapi.Tags = append(oapi.Tags, &huma.Tag{Name: t, Description: tagDescriptions[t]})
	}
}

// markStale documents api.HeaderStale on a read's answers.
func markStale(o *huma.Operation) {
	for code, r := range o.Responses {
		if !strings.HasPrefix(code, "2") || r.Ref != "" {
			continue
		}
		if r.Headers == nil {
			r.Headers = map[string]*huma.Param{}
		}
		r.Headers[api.HeaderStale] = &huma.Param{
			Description: "Set when this host of a cluster has no store quorum and answered from its last view, maybe behind the cluster's: since when, e.g. \"cluster store has no quorum since 2026-12-03T14:50:03Z (12s ago): this is host hostc's last view, maybe behind the cluster's\".",
			Schema:      &huma.Schema{Type: "string"},
		}
	}
}

// tagDescriptions say what each tag of the route table groups.
var tagDescriptions = map[string]string{
	"vms":        "Virtual machines: create from a spec, start, stop, console, disks and NICs.",
	"operations": "Long jobs (create, migrate, backup...): their progress, waiting on them, cancelling them.",
	"host":       "This daemon's host: accelerator, libvirt, health checks.",
	"hosts":      "Peers: the other hosts' daemons this one knows and trusts.",
	"health":     "Probes for supervisors and load balancers.",
	"backups":    "Incremental backups in a deduplicating repository: restore, verify, prune, schedules.",
	"snapshots":  "A VM's snapshots: internal (with memory) or external (disks only).",
	"pools":      "libvirt storage pools.",
	"volumes":    "Volumes in pools: create, resize, clone, upload, download.",
	"images":     "The image catalog VM disks are made from.",
	"networks":   "Networks: NAT, isolated, an existing bridge, Open vSwitch.",
	"migration":  "Moving VMs between hosts: live, offline, cold; evacuating a host.",
	"monitoring": "Prometheus metrics, VM counters and the event stream.",
	"security":   "API tokens, client certificates and the audit log.",
	"peer":       "Daemon-to-daemon calls (joining, migration phases); not for users.",
	"cluster":    "Several hosts as one on embedded etcd: forming it, its members and their health.",
}

// describeOp says what an operation answers and who may call it.
func describeOp(o *huma.Operation, access Access) string {
	var b strings.Builder
	b.WriteString(o.Summary)
	b.WriteString(".")
	if _, ok := o.Responses["202"]; ok {
		b.WriteString(" Answers 202 with the operation that does it: wait on it with GET /v1/operations/{id}/wait.")
	}
	switch access {
	case Public:
		b.WriteString(" Needs no credentials.")
	case Peer:
		b.WriteString(" Called by peer daemons only.")
	case Read:
		b.WriteString(" Needs read access.")
	case Admin:
		b.WriteString(" Needs admin access.")
	}
	return b.String()
}

// vmSpecExamples are the VM specs the document shows for create and
// apply (openapi_test.go checks that each is a valid spec).
var vmSpecExamples = map[string]struct {
	summary string
	spec    api.VMSpec
}{
	"image": {"A VM on a catalog image, on the default network, with cloud-init", api.VMSpec{
		Name: "web1", CPUs: 2, Memory: api.GiB,
		Disks:     []api.Disk{{Name: "root", Image: "debian-12", Size: 10 * api.GiB}, {Name: "data", Volume: "default/web1-data"}},
		NICs:      []api.NIC{{Network: "default"}},
		CloudInit: &api.CloudInit{SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheExample user@laptop"}},
		Autostart: true,
		Labels:    map[string]string{"app": "web"},
	}},
	"kernel": {"Direct kernel boot with a blank disk", api.VMSpec{
		Name: "tiny", CPUs: 1, Memory: 256 * api.MiB,
		Boot:  &api.Boot{Kernel: "/var/lib/godwit/boot/vmlinuz", Initrd: "/var/lib/godwit/boot/initrd.gz", Cmdline: "console=ttyS0"},
		Disks: []api.Disk{{Name: "root", Size: 1 * api.GiB}},
	}},
	"uefi": {"UEFI firmware booting a full copy of an image", api.VMSpec{
		Name: "win1", CPUs: 4, Memory: 8 * api.GiB,
		Boot:  &api.Boot{Firmware: "uefi"},
		Disks: []api.Disk{{Name: "root", Image: "windows-2022", Clone: "full", Size: 64 * api.GiB}},
		NICs:  []api.NIC{{Network: "default", Model: "e1000"}},
	}},
}

// withSpecExamples shows the VM spec examples on an operation whose body
// is a VM spec.
func withSpecExamples(o huma.Operation) huma.Operation {
	ex := map[string]*huma.Example{}
	for name, e := range vmSpecExamples {
		ex[name] = &huma.Example{Summary: e.summary, Value: e.spec}
	}
	o.RequestBody = &huma.RequestBody{
		Description: "The VM spec: what `godwit vm create -f` reads from YAML, as JSON. Unknown fields are errors.",
		Content:     map[string]*huma.MediaType{"application/json": {Examples: ex}},
	}
	return o
}
