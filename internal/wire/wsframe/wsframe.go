// Package wsframe is the client side of WebSocket (RFC 6455) at the level of single frames: the
// upgrade handshake, reading a server frame, and writing a masked client frame. Gantry's runtime and
// the Kong data-plane test peer use it instead of a WebSocket library because Kong's hybrid protocol
// needs what libraries hide: pings whose payload is the configuration hash, control over whether the
// control plane's pings are answered, and whether a message arrived fragmented.
package wsframe

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 6455 defines Sec-WebSocket-Accept with SHA-1
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// Opcode is a WebSocket frame opcode (RFC 6455 section 5.2).
type Opcode byte

// Frame opcodes.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// String names the opcode as Kong's logs do.
func (o Opcode) String() string {
	switch o {
	case OpContinuation:
		return "continuation"
	case OpText:
		return "text"
	case OpBinary:
		return "binary"
	case OpClose:
		return "close"
	case OpPing:
		return "ping"
	case OpPong:
		return "pong"
	}
	return fmt.Sprintf("opcode(%d)", byte(o))
}

// IsControl reports whether o is a control opcode (close, ping, pong).
func (o Opcode) IsControl() bool { return o&0x8 != 0 }

// ErrProtocol marks a frame or handshake answer that breaks RFC 6455; the link must be dropped.
var ErrProtocol = errors.New("protocol error")

// StatusError is a handshake answered with an HTTP status other than 101 Switching Protocols.
type StatusError struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Body is the start of the answer's body, at most 4 KiB; servers put their reason there.
	Body []byte
}

// Error implements error.
func (e *StatusError) Error() string {
	return fmt.Sprintf("websocket upgrade refused: HTTP %d", e.StatusCode)
}

// guid is the fixed key suffix of RFC 6455 section 1.3.
const guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey returns the Sec-WebSocket-Accept value a server must answer to key.
func AcceptKey(key string) string {
	h := sha1.Sum([]byte(key + guid)) //nolint:gosec // RFC 6455's accept key, not a security boundary
	return base64.StdEncoding.EncodeToString(h[:])
}

// Handshake sends the upgrade request for target (path and query) to host over conn and reads the
// answer through a reader of bufSize bytes (at most 0: 4 KiB), which it returns for the frames
// that follow. A non-101 answer is a *StatusError; a 101 with a wrong accept key, no "Upgrade:
// websocket", or an extension that was not offered wraps ErrProtocol. The caller sets deadlines.
func Handshake(conn net.Conn, host, target string, bufSize int) (*bufio.Reader, error) {
	var kb [16]byte
	if _, err := rand.Read(kb[:]); err != nil {
		return nil, err
	}
	key := base64.StdEncoding.EncodeToString(kb[:])
	req := "GET " + target + " HTTP/1.1\r\n" +
		"Host: " + host + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, fmt.Errorf("sending the upgrade request: %w", err)
	}
	if bufSize <= 0 {
		bufSize = 4096
	}
	br := bufio.NewReaderSize(conn, bufSize)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return nil, fmt.Errorf("reading the upgrade response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		return nil, &StatusError{StatusCode: resp.StatusCode, Body: body}
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") || resp.Header.Get("Sec-WebSocket-Accept") != AcceptKey(key) {
		return nil, fmt.Errorf("%w: bad upgrade response headers %v", ErrProtocol, resp.Header)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		return nil, fmt.Errorf("%w: server chose extension %q that was not offered", ErrProtocol, ext)
	}
	return br, nil
}

// Frame is one frame as read from the wire.
type Frame struct {
	Fin     bool
	Op      Opcode
	Payload []byte
}

// Read reads one server frame. A server frame must be unmasked, use no reserved bits (no
// extension is negotiated) and fit in maxPayload bytes; control frames must be final and at most
// 125 bytes. Violations wrap ErrProtocol.
func Read(r *bufio.Reader, maxPayload int64) (Frame, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, err
	}
	f := Frame{Fin: hdr[0]&0x80 != 0, Op: Opcode(hdr[0] & 0x0f)}
	if hdr[0]&0x70 != 0 {
		return f, fmt.Errorf("%w: reserved bits set in a %s frame", ErrProtocol, f.Op)
	}
	if hdr[1]&0x80 != 0 {
		return f, fmt.Errorf("%w: masked frame from the server", ErrProtocol)
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if f.Op.IsControl() && (n > 125 || !f.Fin) {
		return f, fmt.Errorf("%w: invalid %s control frame", ErrProtocol, f.Op)
	}
	if n > uint64(maxPayload) {
		return f, fmt.Errorf("%w: %d-byte frame exceeds the %d-byte payload limit", ErrProtocol, n, maxPayload)
	}
	f.Payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.Payload); err != nil {
		return f, err
	}
	return f, nil
}

// Append appends one final client frame of opcode op to dst, masked with mask. Clients must use a
// fresh random mask per frame (RFC 6455 section 5.3); the caller provides it so that it can keep the
// storage and frame without allocating.
func Append(dst []byte, op Opcode, payload []byte, mask [4]byte) []byte {
	dst = append(dst, 0x80|byte(op))
	switch n := len(payload); {
	case n <= 125:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	for i := range payload {
		dst[start+i] ^= mask[i&3]
	}
	return dst
}

// ParseClose splits a close frame's payload into its status code and reason; ok is false when the
// payload carries no code.
func ParseClose(p []byte) (code int, reason string, ok bool) {
	if len(p) < 2 {
		return 0, "", false
	}
	return int(binary.BigEndian.Uint16(p)), string(p[2:]), true
}
