package wire

// Enrollment: how a new runtime instance gets its client certificate from a one-time token
// instead of a pasted key (see internal/cp/cluster). The request goes to the cluster listener
// over TLS without a client certificate.

// EnrollPath is the cluster listener's enrollment endpoint (POST, JSON).
const EnrollPath = "/v1/enroll"

// RenewPath is the cluster listener's renewal endpoint (POST, JSON EnrollRequest without a
// token): an instance authenticated by its pinned client certificate sends a CSR for a new key
// and gets an EnrollResponse with a new certificate for the same group.
const RenewPath = "/v1/renew"

// EnrollmentTokenPrefix starts every enrollment token. A token is
// gent_<secret>.<hex SHA-256 of the cluster CA certificate>: the instance checks the listener's
// chain against the fingerprint before it sends the secret.
const EnrollmentTokenPrefix = "gent_"

// EnrollRequest is the body of an enrollment.
type EnrollRequest struct {
	// Token is the whole enrollment token.
	Token string `json:"token"`
	// CSR is a PEM certificate request for the instance's own key; its subject is ignored.
	CSR string `json:"csr"`
	// Hostname names the instance in the certificate's title; informational.
	Hostname string `json:"hostname,omitempty"`
}

// EnrollResponse is the answer to an accepted enrollment; a refusal is {"message": …} with a
// 4xx status.
type EnrollResponse struct {
	// Cert is the instance's client certificate (PEM), pinned to GroupID.
	Cert string `json:"cert"`
	// CACert is the cluster CA (PEM) the instance trusts from now on.
	CACert  string `json:"ca_cert"`
	GroupID string `json:"group_id"`
}
