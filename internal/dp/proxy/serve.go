package proxy

import (
	"context"
	"net"
)

// Serve accepts connections on ln and serves plain HTTP/1.1 on each with
// the runtime's own server loop (internal/dp/h1server). Requests go to
// Options.Server.Handler, or to the Proxy itself. It blocks until ln fails
// or Shutdown is called, and then returns http.ErrServerClosed.
func (p *Proxy) Serve(ln net.Listener) error { return p.srv.Serve(ln) }

// Shutdown stops Serve gracefully; see [h1server.Server.Shutdown].
func (p *Proxy) Shutdown(ctx context.Context) error { return p.srv.Shutdown(ctx) }

// ServerErrorBody renders the errors the server loop answers itself in
// Kong's JSON error format; it is the h1server.Options.ErrorBody that a
// Proxy and the gateway install.
func ServerErrorBody(dst []byte, msg, id string) ([]byte, string) {
	return appendErrBody(dst, fmtJSON, msg, id), errContentType[fmtJSON]
}
