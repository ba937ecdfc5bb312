package agent

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gantry-gw/gantry/internal/wire/wsframe"
)

// The agent speaks WebSocket through wsframe rather than a library: Kong's
// protocol puts the configuration hash in the payload of the data plane's
// pings, and the WebSocket library in go.mod sends only pings of its own
// making.

// The opcodes the agent sends and reads.
const (
	opText   = wsframe.OpText
	opBinary = wsframe.OpBinary
	opClose  = wsframe.OpClose
	opPing   = wsframe.OpPing
	opPong   = wsframe.OpPong
)

// HandshakeError is a refusal by the control plane before the WebSocket
// upgrade: an HTTP answer other than 101.
type HandshakeError struct {
	// StatusCode is the HTTP status the control plane answered.
	StatusCode int
	// Body is the start of the answer's body (at most 1 KiB), which says
	// why when the control plane gives a reason.
	Body string
}

// Error implements error.
func (e *HandshakeError) Error() string {
	msg := fmt.Sprintf("control plane refused the connection: HTTP %d", e.StatusCode)
	if b := strings.TrimSpace(e.Body); b != "" {
		msg += ": " + b
	}
	return msg
}

// CloseError is a close frame received from the control plane.
type CloseError struct {
	// Code is the close status code (RFC 6455 §7.4); 1005 when the frame
	// carried none.
	Code int
	// Reason is the close reason the control plane gave, possibly empty.
	Reason string
}

// Error implements error.
func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("control plane closed the connection (status %d)", e.Code)
	}
	return fmt.Sprintf("control plane closed the connection (status %d): %s", e.Code, e.Reason)
}

// wsConn is the client end of one WebSocket over TLS. Reads happen from
// one goroutine; writes may come from several and are serialized by wmu.
type wsConn struct {
	conn       net.Conn
	br         *bufio.Reader
	maxPayload int64

	wmu sync.Mutex // guards writes to conn and wbuf
	// wbuf and mask are reused for every frame written, to avoid an
	// allocation per ping.
	wbuf []byte
	mask [4]byte
}

// dialWS opens wss://addr/path?rawQuery with cfg and performs the upgrade.
// A non-101 answer is a *HandshakeError.
func dialWS(ctx context.Context, addr string, cfg *tls.Config, path, rawQuery string, maxPayload int64) (*wsConn, error) {
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := c.SetDeadline(dl); err != nil {
			_ = c.Close()
			return nil, err
		}
	}
	target := path
	if rawQuery != "" {
		target += "?" + rawQuery
	}
	br, err := wsframe.Handshake(c, addr, target, 64<<10)
	var se *wsframe.StatusError
	switch {
	case errors.As(err, &se):
		_ = c.Close()
		// Kong-style error bodies are {"message":"…"}; keep just the
		// sentence when that is what came.
		body := se.Body[:min(len(se.Body), 1024)]
		var m struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(se.Body, &m) == nil && m.Message != "" {
			body = []byte(m.Message)
		}
		return nil, &HandshakeError{StatusCode: se.StatusCode, Body: string(body)}
	case err != nil:
		_ = c.Close()
		return nil, err
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		_ = c.Close()
		return nil, err
	}
	return &wsConn{conn: c, br: br, maxPayload: maxPayload}, nil
}

// readMessage returns the next data message (opBinary or opText),
// reassembling fragments, answering pings, and passing pongs to onPong.
// Every frame, control frames included, must start arriving before
// idle elapses; otherwise the link is considered dead. A close frame is
// answered and returned as a *CloseError.
func (w *wsConn) readMessage(idle time.Duration, onPong func()) (wsframe.Opcode, []byte, error) {
	var (
		msgOp wsframe.Opcode
		msg   []byte
	)
	for {
		_ = w.conn.SetReadDeadline(time.Now().Add(idle)) // fails only on a closed conn, as the read below does
		f, err := wsframe.Read(w.br, w.maxPayload)
		if err != nil {
			return 0, nil, err
		}
		op, payload := f.Op, f.Payload
		switch op {
		case opPing:
			// Kong's data plane ignores the CP's pings; answering them
			// is what RFC 6455 asks and costs nothing.
			if err := w.write(opPong, payload); err != nil {
				return 0, nil, err
			}
			continue
		case opPong:
			if onPong != nil {
				onPong()
			}
			continue
		case opClose:
			ce := &CloseError{Code: 1005}
			if code, reason, ok := wsframe.ParseClose(payload); ok {
				ce.Code, ce.Reason = code, reason
			}
			// Echo the status, as RFC 6455 §5.5.1 asks; the peer may
			// already be gone.
			_ = w.write(opClose, payload[:min(len(payload), 2)])
			return 0, nil, ce
		case opText, opBinary:
			if msgOp != 0 {
				return 0, nil, errors.New("protocol error: new message inside a fragmented one")
			}
			msgOp, msg = op, payload
		case wsframe.OpContinuation:
			if msgOp == 0 {
				return 0, nil, errors.New("protocol error: continuation frame without a message")
			}
			if int64(len(msg)+len(payload)) > w.maxPayload {
				return 0, nil, fmt.Errorf("protocol error: message exceeds %d bytes", w.maxPayload)
			}
			msg = append(msg, payload...)
		default:
			return 0, nil, fmt.Errorf("protocol error: unknown opcode %#x", op)
		}
		if f.Fin {
			return msgOp, msg, nil
		}
	}
}

// writeTimeout bounds each frame write, as Kong's 5 s CLUSTERING_TIMEOUT.
const writeTimeout = 5 * time.Second

// write sends payload as one masked, final frame of opcode op.
func (w *wsConn) write(op wsframe.Opcode, payload []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	// The key comes from crypto/rand, as RFC 6455 §5.3 asks; it lives in
	// the connection so that reading it does not allocate.
	rand.Read(w.mask[:])
	b := wsframe.Append(w.wbuf[:0], op, payload, w.mask)
	// Keep small buffers for reuse; let a large configuration-sized one go.
	if cap(b) <= 64<<10 {
		w.wbuf = b
	}
	if err := w.conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	_, err := w.conn.Write(b)
	return err
}

// close sends a close frame with code and reason (best effort) and closes
// the connection.
func (w *wsConn) close(code int, reason string) error {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	p = append(p, reason...)
	_ = w.write(opClose, p) // best effort: the connection closes either way
	return w.conn.Close()
}
