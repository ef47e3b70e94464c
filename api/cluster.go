package api

import "time"

// Roles of a host in a cluster.
const (
	// RoleVoter hosts run a voting member of the cluster store.
	RoleVoter = "voter"
	// RoleLearner hosts run a member that is catching up before it votes.
	RoleLearner = "learner"
	// RoleClient hosts run no member: they use the store as clients (the
	// voters were full when they joined).
	RoleClient = "client"
)

// ClusterInit makes this host the first member of a new cluster.
type ClusterInit struct {
	MaxVoters int `json:"maxVoters,omitempty" enum:"0,3,5" doc:"How many voting members the cluster takes, 3 (default) or 5; later hosts join as clients."`
}

// ClusterJoin asks this host to join the cluster a member of which
// answers at URL: `godwit cluster join URL --token T`.
type ClusterJoin struct {
	URL   string `json:"url" doc:"A cluster host's TCP API, https://HOST:PORT."`
	Token string `json:"token" doc:"A one-time token from 'godwit host token' on that host."`
}

// ClusterAdmit is what a joining daemon sends the cluster host whose
// token it holds (daemon to daemon, authenticated by the token).
type ClusterAdmit struct {
	PeerJoin
	// PeerURL and ClientURL are where the joiner's store member will
	// listen, should it become one.
	PeerURL   string `json:"peerURL"`
	ClientURL string `json:"clientURL"`
}

// ClusterAdmitted is the answer: who admitted the host, the cluster's
// one CA (certificate and key: every host signs its own member
// certificate with it) and where the store's voters answer.
type ClusterAdmitted struct {
	PeerJoined
	ClusterID    string   `json:"clusterID"`
	ClusterCA    string   `json:"clusterCA"`
	ClusterCAKey string   `json:"clusterCAKey"`
	Endpoints    []string `json:"endpoints" doc:"Client URLs of the store's voting members."`
}

// ClusterStatus is the cluster as one host sees it.
type ClusterStatus struct {
	// Enabled is false on a host in no cluster (the rest is empty then).
	Enabled   bool          `json:"enabled"`
	ID        string        `json:"id,omitempty" doc:"The cluster store's cluster id."`
	Self      string        `json:"self" doc:"The host that answered."`
	Role      string        `json:"role,omitempty" enum:"voter,learner,client," doc:"The answering host's role."`
	Leader    string        `json:"leader,omitempty" doc:"The store's leader, when there is one."`
	Ready     bool          `json:"ready" doc:"The store has a quorum and a leader, as this host sees it."`
	Message   string        `json:"message" doc:"The store's health in a line, e.g. why it waits for a quorum."`
	Voters    int           `json:"voters"`
	MaxVoters int           `json:"maxVoters,omitempty"`
	Hosts     []ClusterHost `json:"hosts"`
	// Peers are this host's peers that are no hosts of the cluster:
	// migrations to them work, but they are not part of the cluster
	// (join them with 'godwit cluster join' there).
	Peers []string `json:"peers,omitempty"`
}

// ClusterHost is one host of the cluster: its registry record, its
// heartbeat, and (for a store member) what its member says.
type ClusterHost struct {
	Name string `json:"name"`
	URL  string `json:"url,omitempty" doc:"The host's TCP API."`
	Role string `json:"role" enum:"voter,learner,client"`
	// Alive: its heartbeat lease is alive.
	Alive bool `json:"alive" doc:"The host's heartbeat lease is alive."`
	// Heartbeat is when the host last renewed its lease, as the store
	// tells it (to the second; when the lease cannot be read, when the
	// host wrote its heartbeat, once a lease and then every
	// heartbeatEvery); HeartbeatAgeMs how long ago that was when this
	// status was made.
	Heartbeat      time.Time         `json:"heartbeat,omitzero"`
	HeartbeatAgeMs int64             `json:"heartbeatAgeMs,omitempty"`
	Lease          string            `json:"lease,omitempty" doc:"The heartbeat lease's id, hex."`
	LeaseTTL       int               `json:"leaseTTLSeconds,omitempty"`
	Schedulable    bool              `json:"schedulable"`
	Labels         map[string]string `json:"labels,omitempty"`
	CPUs           int               `json:"cpus,omitempty"`
	Memory         Size              `json:"memory,omitempty"`
	VMs            int               `json:"vms" doc:"VMs whose records this host holds."`
	// The store member's own report, for voters and learners.
	Member   *ClusterMember `json:"member,omitempty"`
	JoinedAt time.Time      `json:"joinedAt,omitzero"`
	Removed  time.Time      `json:"removed,omitzero" doc:"When cluster remove took the host out while it still held VM records."`
	Error    string         `json:"error,omitempty" doc:"What is wrong with the host, if anything."`
}

// ClusterMember is what a store member answered about itself.
type ClusterMember struct {
	ID           string   `json:"id"`
	PeerURLs     []string `json:"peerURLs"`
	ClientURLs   []string `json:"clientURLs"`
	Reachable    bool     `json:"reachable"`
	Healthy      bool     `json:"healthy"`
	Leader       bool     `json:"leader"`
	RaftIndex    uint64   `json:"raftIndex"`
	RaftTerm     uint64   `json:"raftTerm"`
	AppliedIndex uint64   `json:"appliedIndex"`
	DBSize       Size     `json:"dbSize"`
	DBSizeInUse  Size     `json:"dbSizeInUse"`
	Version      string   `json:"version,omitempty"`
	Alarms       []string `json:"alarms,omitempty"`
	Error        string   `json:"error,omitempty"`
}

// PlacementDecision is where a cluster would place a VM, and why: every
// host's verdict, the picked one first (vm create --dry-run).
type PlacementDecision struct {
	VM       string             `json:"vm"`
	Picked   string             `json:"picked,omitempty" doc:"The host placement picked; empty when none can take the VM."`
	Verdicts []PlacementVerdict `json:"verdicts"`
	// Explanation is the verdicts in a line: "h2: picked (...); h1:
	// 1.2GiB free, needs 2GiB; h3: no network lab".
	Explanation string `json:"explanation"`
	TookMs      int64  `json:"tookMs" doc:"How long placement took."`
}

// PlacementVerdict is one host's answer for a VM.
type PlacementVerdict struct {
	Host   string `json:"host"`
	Fits   bool   `json:"fits" doc:"The host passed every filter."`
	Picked bool   `json:"picked,omitempty"`
	Reason string `json:"reason" doc:"Why it does not fit, or how much room it has."`
}

// HeaderStale is set on a GET answered, on a host of a cluster whose
// store has no quorum, from that host's last view of the store: it says
// since when ("cluster store has no quorum since ...").
const HeaderStale = "X-Godwit-Stale"
