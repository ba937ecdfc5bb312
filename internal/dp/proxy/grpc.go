package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/h1"
	"github.com/gantry-gw/gantry/internal/dp/h1client"
)

// grpcHopHeaders are not forwarded either way on HTTP/2 (RFC 9113 8.2.2).
var grpcHopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Transfer-Encoding": true,
	"Upgrade": true, "Host": true, "Trailer": true,
}

// serveGRPC proxies a request to a grpc or grpcs service over HTTP/2,
// streaming both bodies and relaying trailers (grpc-status). It is not on
// the HTTP/1.1 fast path and uses net/http's HTTP/2 client.
func (p *Proxy) serveGRPC(w http.ResponseWriter, r *http.Request, st *reqState, svc *Service) {
	fi := &st.fi
	target := st.match.Path
	if target == "" {
		target = requestPath(r)
	}
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		// A bare '?' is kept, as writeRequestHead keeps it.
		target += "?" + r.URL.RawQuery
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		p.writeError(w, r, st, http.StatusBadRequest, MsgBadRequest)
		return
	}
	addr, err := st.pickPeer(svc, r)
	if err != nil {
		p.upstreamError(w, r, st, err)
		return
	}
	u.Scheme, u.Host = "http", addr
	if svc.tlsConfig != nil {
		u.Scheme = "https"
	}
	out := (&http.Request{
		Method:        r.Method,
		URL:           u,
		Header:        make(http.Header, len(r.Header)+4),
		Body:          r.Body,
		ContentLength: r.ContentLength,
		Host:          fi.host,
	}).WithContext(r.Context())
	if out.Body == nil || out.ContentLength == 0 {
		out.Body = http.NoBody
	}
	for k, vv := range r.Header {
		if grpcHopHeaders[k] || k == fi.reqIDName || strings.HasPrefix(k, "X-Forwarded-") || k == "X-Real-Ip" {
			continue
		}
		if k == "Te" {
			// Only "trailers" may be sent on HTTP/2, and gRPC needs it.
			if h1.HasTokenAny(vv, "trailers") {
				out.Header["Te"] = []string{"trailers"}
			}
			continue
		}
		out.Header[k] = vv
	}
	xff := fi.clientIP
	if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
		xff = strings.Join(prior, ", ") + ", " + xff
	}
	out.Header["X-Forwarded-For"] = []string{xff}
	out.Header["X-Forwarded-Proto"] = []string{fwd(r, fi, "X-Forwarded-Proto", fi.scheme)}
	out.Header["X-Real-Ip"] = []string{fi.clientIP}
	out.Header[fi.reqIDName] = []string{fi.reqID}

	upStart := time.Now()
	resp, err := p.tr.HTTP2(svc.poolKey, svc.tlsConfig).RoundTrip(out)
	if err != nil {
		st.reportPeer(svc, addr, 0, err)
		var ne net.Error
		if errors.As(err, &ne) || strings.Contains(err.Error(), "dial") {
			err = &h1client.DialError{Addr: addr, Err: err}
		}
		p.upstreamError(w, r, st, err)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode < 100 || resp.StatusCode > 599 {
		// HTTP/2's :status is any digits to Go's client; a status outside
		// RFC 9110's range cannot be relayed (the server loop refuses it).
		st.reportPeer(svc, addr, 0, h1client.ErrMalformed)
		p.upstreamError(w, r, st, h1client.ErrMalformed)
		return
	}
	headAt := time.Now()
	st.upLatency = headAt.Sub(upStart)
	st.reportPeer(svc, addr, resp.StatusCode, nil)
	wh := w.Header()
	for k, vv := range resp.Header {
		if !grpcHopHeaders[k] {
			wh[k] = vv
		}
	}
	wh[st.names.reqID] = []string{fi.reqID}
	if c := st.attempt.SetCookie; c != "" {
		wh["Set-Cookie"] = append(wh["Set-Cookie"], c)
	}
	status := resp.StatusCode
	if st.chain != nil {
		status = p.headerFilter(w, st, status)
	}
	w.WriteHeader(status)
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	flusher, _ := w.(http.Flusher)
	for {
		n, rerr := resp.Body.Read(*bp)
		if n > 0 {
			wn, werr := w.Write((*bp)[:n])
			st.sent += int64(wn)
			if werr != nil {
				break
			}
			// gRPC streams messages: each one goes out as it arrives.
			if flusher != nil {
				flusher.Flush()
			}
		}
		if rerr != nil {
			if rerr != io.EOF {
				p.log.Debug("grpc upstream body", "err", rerr)
				p.logPhase(w, r, st, status)
				panic(http.ErrAbortHandler)
			}
			break
		}
	}
	for k, vv := range resp.Trailer {
		wh[http.TrailerPrefix+k] = vv
	}
	p.logPhase(w, r, st, status)
}
