package kongpeer

import "github.com/gantry-gw/gantry/internal/wire/wsframe"

// The peer speaks RFC 6455 through wsframe rather than a WebSocket library:
// it must send pings with a chosen payload, never answer the CP's pings,
// and see whether a message arrived fragmented, which libraries hide.

// Opcode is a WebSocket frame opcode (RFC 6455 section 5.2).
type Opcode = wsframe.Opcode

// Frame opcodes.
const (
	OpContinuation = wsframe.OpContinuation
	OpText         = wsframe.OpText
	OpBinary       = wsframe.OpBinary
	OpClose        = wsframe.OpClose
	OpPing         = wsframe.OpPing
	OpPong         = wsframe.OpPong
)

// ErrProtocol marks a frame that breaks RFC 6455 or Kong's rules for
// CP->DP frames; the peer records it and drops the link.
var ErrProtocol = wsframe.ErrProtocol
