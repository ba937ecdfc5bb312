package agent

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The agent speaks the client side of WebSocket (RFC 6455) itself rather
// than through a library: Kong's protocol puts the configuration hash in
// the payload of the data plane's pings, and the WebSocket library in
// go.mod sends only pings of its own making.

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// wsGUID is the key suffix of RFC 6455 §1.3.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

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
		c.SetDeadline(dl)
	}
	keyBytes := make([]byte, 16)
	rand.Read(keyBytes)
	key := base64.StdEncoding.EncodeToString(keyBytes)
	target := path
	if rawQuery != "" {
		target += "?" + rawQuery
	}
	req := "GET " + target + " HTTP/1.1\r\n" +
		"Host: " + addr + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, fmt.Errorf("sending upgrade request: %w", err)
	}
	br := bufio.NewReaderSize(c, 64<<10)
	res, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("reading upgrade response: %w", err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 1024))
		res.Body.Close()
		c.Close()
		// Kong-style error bodies are {"message":"…"}; keep just the
		// sentence when that is what came.
		var m struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &m) == nil && m.Message != "" {
			body = []byte(m.Message)
		}
		return nil, &HandshakeError{StatusCode: res.StatusCode, Body: string(body)}
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	if res.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		c.Close()
		return nil, errors.New("upgrade response has a wrong Sec-WebSocket-Accept")
	}
	c.SetDeadline(time.Time{})
	return &wsConn{conn: c, br: br, maxPayload: maxPayload}, nil
}

// readMessage returns the next data message (opBinary or opText),
// reassembling fragments, answering pings, and passing pongs to onPong.
// Every frame, control frames included, must start arriving before
// idle elapses; otherwise the link is considered dead. A close frame is
// answered and returned as a *CloseError.
func (w *wsConn) readMessage(idle time.Duration, onPong func()) (int, []byte, error) {
	var (
		msgOp int
		msg   []byte
	)
	for {
		w.conn.SetReadDeadline(time.Now().Add(idle))
		fin, op, payload, err := w.readFrame()
		if err != nil {
			return 0, nil, err
		}
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
			if len(payload) >= 2 {
				ce.Code = int(binary.BigEndian.Uint16(payload))
				ce.Reason = string(payload[2:])
			}
			// Echo the status, as RFC 6455 §5.5.1 asks; the peer may
			// already be gone.
			w.write(opClose, payload[:min(len(payload), 2)])
			return 0, nil, ce
		case opText, opBinary:
			if msgOp != 0 {
				return 0, nil, errors.New("protocol error: new message inside a fragmented one")
			}
			msgOp, msg = op, payload
		case opContinuation:
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
		if fin {
			return msgOp, msg, nil
		}
	}
}

// readFrame reads one frame from the server, which never masks.
func (w *wsConn) readFrame() (fin bool, op int, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(w.br, h[:]); err != nil {
		return
	}
	fin = h[0]&0x80 != 0
	op = int(h[0] & 0x0F)
	if h[0]&0x70 != 0 {
		return false, 0, nil, errors.New("protocol error: reserved bits set (no extension was negotiated)")
	}
	if h[1]&0x80 != 0 {
		return false, 0, nil, errors.New("protocol error: masked frame from the server")
	}
	n := int64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(w.br, b[:]); err != nil {
			return
		}
		n = int64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(w.br, b[:]); err != nil {
			return
		}
		u := binary.BigEndian.Uint64(b[:])
		if u > uint64(w.maxPayload) {
			return false, 0, nil, fmt.Errorf("protocol error: frame of %d bytes exceeds %d", u, w.maxPayload)
		}
		n = int64(u)
	}
	if op >= opClose && (n > 125 || !fin) {
		return false, 0, nil, errors.New("protocol error: bad control frame")
	}
	if n > w.maxPayload {
		return false, 0, nil, fmt.Errorf("protocol error: frame of %d bytes exceeds %d", n, w.maxPayload)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(w.br, payload)
	return
}

// writeTimeout bounds each frame write, as Kong's 5 s CLUSTERING_TIMEOUT.
const writeTimeout = 5 * time.Second

// write sends payload as one masked, final frame of opcode op.
func (w *wsConn) write(op int, payload []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	b := w.wbuf[:0]
	b = append(b, 0x80|byte(op))
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	// The key comes from crypto/rand, as RFC 6455 §5.3 asks; it lives in
	// the connection so that reading it does not allocate.
	rand.Read(w.mask[:])
	b = append(b, w.mask[:]...)
	start := len(b)
	b = append(b, payload...)
	for i := range b[start:] {
		b[start+i] ^= w.mask[i&3]
	}
	// Keep small buffers for reuse; let a large configuration-sized one go.
	if cap(b) <= 64<<10 {
		w.wbuf = b
	}
	w.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := w.conn.Write(b)
	return err
}

// close sends a close frame with code and reason (best effort) and closes
// the connection.
func (w *wsConn) close(code int, reason string) error {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	p = append(p, reason...)
	w.write(opClose, p)
	return w.conn.Close()
}
