package api

import "time"

// CertRequest asks the daemon's CA for a client certificate.
type CertRequest struct {
	Name  string `json:"name" minLength:"1" maxLength:"64" doc:"Who the certificate is for: its common name, shown as cert:NAME in the audit log. Letters, digits and ._- (starting with a letter or digit)." example:"laptop"`
	Scope string `json:"scope" enum:"read,admin" doc:"read (GET routes) or admin (everything)."`
}

// NewCert is a client certificate just issued, with its private key: the
// only time the daemon shows the key, of which it keeps no copy. Write
// CA, Cert and Key as ca.crt, client.crt and client.key in a directory
// and pass it as --tls-dir.
type NewCert struct {
	Name        string    `json:"name" doc:"The certificate's common name." example:"laptop"`
	Scope       string    `json:"scope" enum:"read,admin" doc:"The scope, carried in the certificate's OU."`
	Serial      string    `json:"serial" doc:"The certificate's serial number, hex."`
	Fingerprint string    `json:"fingerprint" doc:"SHA-256 of the certificate, hex."`
	NotAfter    time.Time `json:"notAfter" doc:"When the certificate expires."`
	URL         string    `json:"url,omitempty" doc:"The daemon's TCP API (--advertise), to use the certificate with."`
	CA          string    `json:"ca" doc:"The daemon's CA certificate, PEM (ca.crt)."`
	Cert        string    `json:"cert" doc:"The client certificate, PEM (client.crt)."`
	Key         string    `json:"key" doc:"The client certificate's private key, PEM (client.key); shown only now."`
}
