package proxy

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/h1client"
)

// grpcUpstream answers like a gRPC server: it requires HTTP/2, echoes the
// request message back upper-cased, and ends with grpc-status trailers.
func grpcUpstream(t *testing.T, useTLS bool) string {
	t.Helper()
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 || r.Header.Get("Te") != "trailers" || r.Header.Get("Content-Type") != "application/grpc" {
			w.WriteHeader(http.StatusHTTPVersionNotSupported)
			return
		}
		msg, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Set("X-Uri", r.RequestURI)
		_, _ = w.Write(bytes.ToUpper(msg))
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set("Grpc-Message", "ok")
	}))
	if useTLS {
		up.EnableHTTP2 = true
		up.StartTLS()
	} else {
		up.Config.Protocols = new(http.Protocols)
		up.Config.Protocols.SetUnencryptedHTTP2(true)
		up.Start()
	}
	t.Cleanup(up.Close)
	return up.Listener.Addr().String()
}

func TestGRPCUpstreams(t *testing.T) {
	for _, proto := range []string{"grpc", "grpcs"} {
		t.Run(proto, func(t *testing.T) {
			addr := grpcUpstream(t, proto == "grpcs")
			host, port, _ := net.SplitHostPort(addr)
			svc := &Service{Host: host, Protocol: proto}
			svc.Port, _ = strconv.Atoi(port)
			if err := svc.Prepare(); err != nil {
				t.Fatal(err)
			}
			tr, _ := h1client.New(h1client.Options{})
			defer tr.Close()
			p, err := New(Options{Transport: tr, Config: staticCfg(svc)})
			if err != nil {
				t.Fatal(err)
			}
			// gRPC clients speak HTTP/2: the proxy runs behind net/http's
			// TLS server here, as on the runtime's TLS listener.
			front := httptest.NewUnstartedServer(p)
			front.EnableHTTP2 = true
			front.StartTLS()
			defer front.Close()
			client := front.Client()
			client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
			client.Transport.(*http.Transport).ForceAttemptHTTP2 = true
			for i := 0; i < 2; i++ {
				req, _ := http.NewRequest("POST", front.URL+"/pkg.Echo/Say", bytes.NewReader([]byte("\x00\x00\x00\x00\x05hello")))
				req.Header.Set("Content-Type", "application/grpc")
				req.Header.Set("Te", "trailers")
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.ProtoMajor != 2 || string(body) != "\x00\x00\x00\x00\x05HELLO" {
					t.Fatalf("status %d proto %d body %q", resp.StatusCode, resp.ProtoMajor, body)
				}
				if resp.Trailer.Get("Grpc-Status") != "0" || resp.Trailer.Get("Grpc-Message") != "ok" {
					t.Errorf("trailers %v", resp.Trailer)
				}
				if resp.Header.Get("X-Path") != "/pkg.Echo/Say" || resp.Header.Get("X-Gantry-Request-Id") == "" {
					t.Errorf("headers %v", resp.Header)
				}
			}
			// A target ending in a bare '?' keeps it upstream, as Kong's runloop does for every
			// protocol (kong/runloop/handler.lua).
			req, _ := http.NewRequest("POST", front.URL+"/pkg.Echo/Say?", bytes.NewReader([]byte("\x00\x00\x00\x00\x01x")))
			req.Header.Set("Content-Type", "application/grpc")
			req.Header.Set("Te", "trailers")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if got := resp.Header.Get("X-Uri"); got != "/pkg.Echo/Say?" {
				t.Errorf("upstream :path %q, want %q", got, "/pkg.Echo/Say?")
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		svc := serviceFor(t, "127.0.0.1:1")
		svc.Protocol = "grpc"
		if err := svc.Prepare(); err != nil {
			t.Fatal(err)
		}
		env := newEnv(t, netHTTP, staticCfg(svc), h1client.Options{})
		resp, body := get(t, env.url+"/x")
		if resp.StatusCode != 502 {
			t.Errorf("status %d %s", resp.StatusCode, body)
		}
	})
}
