package compile

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"

	"github.com/gantry-gw/gantry/internal/dp/proxy"
	"github.com/gantry-gw/gantry/internal/dp/router"
)

// rejection answers a request whose protocol the matched route does not
// accept, as Kong does: 426 with Upgrade for http on https-only routes, a
// redirect when the route asks for one, gRPC status headers for gRPC
// mismatches. Resolve hands it to the proxy as Match.Reject; boxing it costs
// one allocation, on this error path only.
type rejection router.Rejection

// RejectStatus implements proxy.RejectStatus: the status ServeHTTP
// answers (200 for gRPC, whose error travels in Grpc-Status).
func (rej rejection) RejectStatus() int {
	if rej.GRPCStatus != 0 {
		return http.StatusOK
	}
	return rej.Status
}

// ServeHTTP implements http.Handler.
func (rej rejection) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if rej.GRPCStatus != 0 {
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", strconv.Itoa(rej.GRPCStatus))
		h.Set("Grpc-Message", rej.GRPCMessage)
		w.WriteHeader(http.StatusOK)
		return
	}
	if rej.RedirectHTTPS {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		h.Set("Location", "https://"+host+r.URL.RequestURI())
	}
	if rej.Upgrade != "" {
		h.Set("Connection", "Upgrade")
		h.Set("Upgrade", rej.Upgrade)
	}
	if rej.Message == "" {
		w.WriteHeader(rej.Status)
		return
	}
	body, _ := json.Marshal(map[string]string{"message": rej.Message})
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rej.Status)
	if r.Method != http.MethodHead {
		// The head is sent; a failed write is a client that left, and the
		// server ends that connection.
		_, _ = w.Write(body)
	}
}

var _ proxy.RejectStatus = rejection{}
