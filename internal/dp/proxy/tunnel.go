package proxy

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/h1client"
)

// tunnel completes a WebSocket upgrade the upstream accepted (101): it
// takes over the client connection, relays the 101 head, then copies bytes
// both ways until either side closes. The upstream read_timeout bounds how
// long the tunnel may stay silent from the upstream side, as nginx's
// proxy_read_timeout does for upgraded connections.
func (p *Proxy) tunnel(w http.ResponseWriter, r *http.Request, c *h1client.Conn, st *reqState, svc *Service) {
	up, early := c.Hijack()
	defer func() { _ = up.Close() }()
	st.status = http.StatusSwitchingProtocols
	p.writeResponseHead(w, st)
	if st.chain != nil {
		// The status stays 101: the upstream already switched protocols.
		p.headerFilter(w, st, http.StatusSwitchingProtocols)
		defer p.logPhase(nil, r, st, http.StatusSwitchingProtocols)
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		p.log.Debug("hijack", "err", err)
		p.writeError(w, r, st, http.StatusInternalServerError, MsgUnexpected)
		return
	}
	defer func() { _ = nc.Close() }()
	_ = nc.SetDeadline(time.Time{})

	bw := brw.Writer
	bw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	_ = w.Header().Write(bw) // Errors surface on Flush.
	bw.WriteString("Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	// Bytes the upstream sent right after its 101 belong to the tunnel.
	bw.Write(early)
	if err := bw.Flush(); err != nil {
		return
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		// Client to upstream, including bytes the server already buffered.
		var src io.Reader = nc
		if n := brw.Reader.Buffered(); n > 0 {
			b, _ := brw.Peek(n)
			src = io.MultiReader(bytesReader(b), nc)
		}
		copyConn(up, src, 0)
		// Half-close so the upstream sees the client's end of stream.
		if cw, ok := up.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	copyConn(nc, up, svc.ReadTimeout)
	_ = nc.Close()
	_ = up.Close()
	<-done
}

// copyConn copies src to dst until EOF or error. A positive idle bound
// sets a read deadline before each read when src is a net.Conn.
func copyConn(dst io.Writer, src io.Reader, idle time.Duration) {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	sc, _ := src.(net.Conn)
	for {
		if sc != nil && idle > 0 {
			_ = sc.SetReadDeadline(time.Now().Add(idle))
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(append([]byte(nil), b...)) }
