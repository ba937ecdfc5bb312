package plugin

import "net/http"

// Upstream headers auth plugins set, in canonical form.
const (
	HeaderConsumerID           = "X-Consumer-Id"
	HeaderConsumerCustomID     = "X-Consumer-Custom-Id"
	HeaderConsumerUsername     = "X-Consumer-Username"
	HeaderCredentialIdentifier = "X-Credential-Identifier" //nolint:gosec // a header name, not a credential
	HeaderAnonymousConsumer    = "X-Anonymous-Consumer"
)

// SetConsumer authenticates the request as consumer with cred (nil for an
// anonymous consumer) and sets or clears the X-Consumer-* and
// X-Credential-Identifier upstream headers as Kong's auth plugins do;
// X-Anonymous-Consumer: true is set only when there is no credential.
func SetConsumer(c *Ctx, consumer *Consumer, cred *Credential) {
	c.Authenticate(consumer, cred)
	if consumer != nil && consumer.ID != "" {
		c.SetUpstreamHeader(HeaderConsumerID, consumer.ID)
	} else {
		c.ClearUpstreamHeader(HeaderConsumerID)
	}
	if consumer != nil && consumer.CustomID != "" {
		c.SetUpstreamHeader(HeaderConsumerCustomID, consumer.CustomID)
	} else {
		c.ClearUpstreamHeader(HeaderConsumerCustomID)
	}
	if consumer != nil && consumer.Username != "" {
		c.SetUpstreamHeader(HeaderConsumerUsername, consumer.Username)
	} else {
		c.ClearUpstreamHeader(HeaderConsumerUsername)
	}
	if cred != nil && cred.Identifier != "" {
		c.SetUpstreamHeader(HeaderCredentialIdentifier, cred.Identifier)
	} else {
		c.ClearUpstreamHeader(HeaderCredentialIdentifier)
	}
	if cred != nil {
		c.ClearUpstreamHeader(HeaderAnonymousConsumer)
	} else {
		c.SetUpstreamHeader(HeaderAnonymousConsumer, "true")
	}
}

// AuthFailure is why an auth plugin rejected a request.
type AuthFailure struct {
	Status  int
	Message string
	Header  http.Header
	// Exit selects kong.response.exit (a plain {"message"} body) instead
	// of kong.response.error (message plus request_id).
	Exit bool
	// Body, when set with Exit, replaces the {"message"} body (jwt's claim
	// error tables).
	Body []byte
}

// Authenticate runs Kong's auth-plugin flow around authenticate, which
// checks credentials and calls [SetConsumer] on success:
//   - with anonymous set and a credential already present (logical OR with
//     an earlier auth plugin), nothing happens;
//   - on failure with anonymous set, the anonymous consumer (id or
//     username) is authenticated without a credential, or the request ends
//     with 500 when it does not exist;
//   - on failure without anonymous, the failure is the response.
func Authenticate(c *Ctx, store Store, anonymous string, authenticate func(c *Ctx) *AuthFailure) {
	if anonymous != "" && c.Credential != nil {
		return
	}
	f := authenticate(c)
	if f == nil {
		return
	}
	if anonymous != "" {
		consumer := LoadConsumer(store, anonymous)
		if consumer == nil {
			c.Error(http.StatusInternalServerError, "anonymous consumer "+anonymous+" is configured but doesn't exist", nil)
			return
		}
		SetConsumer(c, consumer, nil)
		return
	}
	switch {
	case f.Exit && f.Body != nil:
		c.ExitBody(f.Status, ContentTypeJSON, f.Body, f.Header)
	case f.Exit:
		c.ExitJSON(f.Status, f.Message, f.Header)
	default:
		c.Error(f.Status, f.Message, f.Header)
	}
}
