package api

import "time"

// Token scopes: what a bearer token (or a client certificate) may do.
const (
	// ScopeRead may call every read route (GET): lists, shows, metrics, events.
	ScopeRead = "read"
	// ScopeAdmin may also change things: create, start, stop, delete ...
	ScopeAdmin = "admin"
)

// Token is an API token as listed: never its secret, which the daemon
// keeps only hashed and shows once, when it is created.
type Token struct {
	ID        string    `json:"id" doc:"The token's id (its first part, gwt_ID_...)." example:"3f9a1c2e"`
	Name      string    `json:"name" doc:"A name to recognise it by, unique." example:"prometheus"`
	Scope     string    `json:"scope" enum:"read,admin" doc:"read (GET routes) or admin (everything)."`
	CreatedAt time.Time `json:"createdAt"`
}

// TokenRequest asks for a new token.
type TokenRequest struct {
	Name  string `json:"name" minLength:"1" maxLength:"64" doc:"A name to recognise the token by, unique." example:"prometheus"`
	Scope string `json:"scope" enum:"read,admin" doc:"read or admin."`
}

// NewToken is a token just created, with its secret: the only time the
// daemon shows it. Send it as "Authorization: Bearer SECRET".
type NewToken struct {
	Token
	Secret string `json:"secret" doc:"The bearer token; shown only now."`
}

// TokenList is the answer to GET /v1/tokens.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// AuditEntry is one line of the audit log: a request that could change
// something (every method but GET and HEAD), who sent it and how it ended.
type AuditEntry struct {
	Time       time.Time `json:"time"`
	Principal  string    `json:"principal" doc:"Who: local:uid=0, cert:admin, token:ci (name), or anonymous." example:"token:ci"`
	Scope      string    `json:"scope,omitempty"`
	Remote     string    `json:"remote,omitempty" doc:"The client's address (TCP only)."`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Query      string    `json:"query,omitempty"`
	Status     int       `json:"status" doc:"The HTTP status answered."`
	Operation  string    `json:"operation,omitempty" doc:"The operation the request started, if any."`
	Target     string    `json:"target,omitempty" doc:"What the operation acts on, e.g. vm/web1."`
	Error      string    `json:"error,omitempty"`
	DurationMs int64     `json:"durationMs"`
}

// AuditList is the answer to GET /v1/audit, oldest first.
type AuditList struct {
	Entries []AuditEntry `json:"entries"`
}
