package api

import "time"

// Peer is another host's daemon this one trusts (and that trusts it).
type Peer struct {
	Name      string    `json:"name"`
	URL       string    `json:"url" doc:"The peer's TCP API, https://HOST:PORT."`
	AddedAt   time.Time `json:"addedAt"`
	Reachable bool      `json:"reachable" doc:"The peer answered just now (over mutual TLS)."`
	Error     string    `json:"error,omitempty" doc:"Why the peer did not answer."`
	Host      *Host     `json:"host,omitempty" doc:"What the peer says about itself, when reachable."`
}

// PeerList is the answer to GET /v1/hosts.
type PeerList struct {
	Self  Host   `json:"self"`
	Peers []Peer `json:"peers"`
}

// PeerAdd asks this daemon to join another: `godwit host add NAME URL --token T`.
type PeerAdd struct {
	Name  string `json:"name" doc:"The other host's name (it must call itself that)."`
	URL   string `json:"url" doc:"The other host's TCP API, https://HOST:PORT."`
	Token string `json:"token" doc:"A one-time token from 'godwit host token' on the other host."`
}

// JoinToken lets one other host join this one, once, before it expires.
type JoinToken struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// JoinTokenRequest asks for a join token.
type JoinTokenRequest struct {
	TTLSeconds int `json:"ttlSeconds,omitempty" doc:"How long the token is valid (default 600)."`
}

// PeerJoin is what a joining daemon sends the daemon that issued the token.
type PeerJoin struct {
	Token string `json:"token"`
	Name  string `json:"name"`
	URL   string `json:"url"`
	CA    string `json:"ca" doc:"The joining daemon's CA certificate (PEM)."`
}

// PeerJoined is the answer: who the issuing daemon is.
type PeerJoined struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	CA   string `json:"ca"`
}
