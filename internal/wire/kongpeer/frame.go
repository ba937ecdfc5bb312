package kongpeer

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The peer speaks RFC 6455 itself instead of through a WebSocket library:
// it must send pings with a chosen payload, never answer the CP's pings,
// and see whether a message arrived fragmented, which libraries hide.

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

func (o Opcode) isControl() bool { return o&0x8 != 0 }

// ErrProtocol marks a frame that breaks RFC 6455 or Kong's rules for
// CP->DP frames; the peer records it and drops the link.
var ErrProtocol = errors.New("protocol error")

// wsGUID is the fixed key suffix of RFC 6455's handshake.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

func newKey() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b[:]), nil
}

// rawFrame is one frame as read from the wire.
type rawFrame struct {
	fin     bool
	opcode  Opcode
	payload []byte
}

// readFrame reads one server frame. A server frame must be unmasked, use
// no reserved bits (no extension is negotiated) and fit in maxPayload;
// control frames must be final and at most 125 bytes.
func readFrame(r *bufio.Reader, maxPayload int64) (rawFrame, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return rawFrame{}, err
	}
	f := rawFrame{fin: hdr[0]&0x80 != 0, opcode: Opcode(hdr[0] & 0x0f)}
	if hdr[0]&0x70 != 0 {
		return f, fmt.Errorf("%w: reserved bits set in a %s frame", ErrProtocol, f.opcode)
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
	if f.opcode.isControl() && (n > 125 || !f.fin) {
		return f, fmt.Errorf("%w: invalid %s control frame", ErrProtocol, f.opcode)
	}
	if n > uint64(maxPayload) {
		return f, fmt.Errorf("%w: %d-byte frame exceeds the %d-byte payload limit", ErrProtocol, n, maxPayload)
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return f, err
	}
	return f, nil
}

// appendFrame appends one final, masked client frame to dst.
func appendFrame(dst []byte, op Opcode, payload []byte) ([]byte, error) {
	dst = append(dst, 0x80|byte(op))
	n := len(payload)
	switch {
	case n <= 125:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	var mask [4]byte
	if _, err := rand.Read(mask[:]); err != nil {
		return nil, err
	}
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	for i := range payload {
		dst[start+i] ^= mask[i%4]
	}
	return dst, nil
}

// parseClose splits a close frame's payload into code and reason; an
// empty payload has no code (0).
func parseClose(p []byte) (int, string) {
	if len(p) < 2 {
		return 0, ""
	}
	return int(binary.BigEndian.Uint16(p)), string(p[2:])
}
