package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"

	"github.com/godwit-project/godwit/internal/auth"
)

// CookieName is the session cookie's name.
const CookieName = "godwit_session"

// CSRFHeader carries the session's CSRF token on every change request the
// page sends: another site's page can make the browser send the cookie
// (a form post), but cannot read the token to send with it.
const CSRFHeader = "X-Godwit-CSRF"

// SessionTTL is how long a session lasts without use.
const SessionTTL = 8 * time.Hour

// Session is a logged-in browser: who it is and its CSRF token.
type Session struct {
	Principal auth.Principal
	CSRF      string
	expires   time.Time
}

// Sessions are kept in memory: a daemon restart logs every page out,
// which the page handles by showing the login again.
type Sessions struct {
	mu  sync.Mutex
	all map[string]*Session
	now func() time.Time
}

// NewSessions returns an empty store.
func NewSessions() *Sessions {
	return &Sessions{all: map[string]*Session{}, now: time.Now}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Create starts a session for p and returns its id (the cookie's value).
func (s *Sessions) Create(p auth.Principal) (string, *Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for id, ss := range s.all {
		if now.After(ss.expires) {
			delete(s.all, id)
		}
	}
	id := randomToken()
	ss := &Session{Principal: p, CSRF: randomToken(), expires: now.Add(SessionTTL)}
	s.all[id] = ss
	return id, ss
}

// Lookup returns the live session of id, and extends it.
func (s *Sessions) Lookup(id string) (*Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.all[id]
	if !ok {
		return nil, false
	}
	now := s.now()
	if now.After(ss.expires) {
		delete(s.all, id)
		return nil, false
	}
	ss.expires = now.Add(SessionTTL)
	return ss, true
}

// Delete ends a session.
func (s *Sessions) Delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.all, id)
}

// CheckCSRF reports whether token is the session's.
func (ss *Session) CheckCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(ss.CSRF)) == 1
}
