package h1client

import (
	"errors"
	"fmt"
	"io"
)

// Errors of a malformed or oversized upstream response. A proxy answers
// them as a bad gateway (Kong's 502); the connection is closed.
var (
	ErrMalformed       = errors.New("h1client: malformed upstream response")
	ErrHeadTooLarge    = errors.New("h1client: upstream response head too large")
	ErrTrailerTooLarge = errors.New("h1client: upstream trailer section too large")
)

// DialError marks a failure to connect: nothing was sent, so the attempt is
// always safe to retry.
type DialError struct {
	// Addr is the address dialed.
	Addr string
	// Err is the dial or handshake failure.
	Err error
}

// Error implements error.
func (e *DialError) Error() string { return fmt.Sprintf("connect to %s: %v", e.Addr, e.Err) }

// Unwrap returns the dial or handshake failure.
func (e *DialError) Unwrap() error { return e.Err }

// BodyReadError is a failure reading the request body from its source (the
// client went away, or sent a malformed or overlong body): the client's
// fault, not the upstream's.
type BodyReadError struct {
	// Err is the read failure.
	Err error
}

// Error implements error.
func (e *BodyReadError) Error() string { return "read request body: " + e.Err.Error() }

// Unwrap returns the read failure.
func (e *BodyReadError) Unwrap() error { return e.Err }

// WriteError is a failure writing the request to the upstream.
type WriteError struct {
	// Err is the write failure.
	Err error
}

// Error implements error.
func (e *WriteError) Error() string { return "write upstream: " + e.Err.Error() }

// Unwrap returns the write failure.
func (e *WriteError) Unwrap() error { return e.Err }

// errBodyTooLong is a request body longer than its declared length.
var errBodyTooLong = &BodyReadError{Err: io.ErrShortWrite}
