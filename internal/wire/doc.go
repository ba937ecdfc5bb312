// Package wire defines the messages exchanged between the Gantry control
// plane (CP) and its data planes (DPs) over the cluster listener, and the
// codecs for them. Both the control plane and the runtime import it; it
// imports nothing from either, so the two sides cannot drift apart.
//
// # Kong hybrid protocol v1 (/v1/outlet)
//
// A data plane opens a TLS WebSocket to
//
//	wss://<cp>/v1/outlet?node_id=<uuid>&node_hostname=<host>&node_version=<x.y.z>
//
// (see [NodeQuery]; Kong does not URL-encode these values). The CP answers
// 400 before the upgrade when a parameter is missing. After the upgrade:
//
//	direction  frame        opcode  encoding         Go type
//	DP -> CP   basic_info   binary  plain JSON       [BasicInfo]
//	CP -> DP   reconfigure  binary  gzip'd JSON      [Reconfigure]
//	DP -> CP   error        binary  plain JSON       [ErrorFrame] (Konnect mode only)
//	DP -> CP   ping         ping    32-char hash     (the DP's current config hash, or 32 zeros)
//	CP -> DP   pong         pong    empty
//
// Each CP->DP configuration must be one unfragmented binary frame: Kong's
// data plane treats a fragmented message, a non-gzip payload or non-JSON
// content as fatal and reconnects 5-10 s later.
//
// # Kong data-plane versions
//
// The CP produces the configuration of one Kong version (schema.KongVersion)
// and serves every Kong data plane of the same major ([CheckVersionCompatibility]):
// an older one is sent that configuration downgraded for its version by
// package kongcompat (what it lacks removed, with a compatibility warning on
// the node when that changes behaviour) and is expected to report the hash of
// what it was sent; a newer one gets the CP's configuration and a warning
// ([NewerVersionIssue]).
//
// # Gantry extension
//
// A Gantry runtime adds a "gantry" object to basic_info ([GantryHello]).
// Kong's control plane ignores unknown basic_info fields, and a Kong data
// plane never sends the object, so the extension is invisible to Kong. When
// both sides speak it, the CP answers with a hello and from then on uses
// the Gantry frames:
//
//	direction  frame      opcode  encoding     Go type
//	CP -> DP   hello      binary  gzip'd JSON  [Hello]
//	CP -> DP   revision   binary  gzip'd JSON  [Revision] (replaces reconfigure)
//	DP -> CP   ack        binary  plain JSON   [Ack]
//	DP -> CP   nack       binary  plain JSON   [Nack]
//	DP -> CP   telemetry  binary  gzip'd JSON  [Telemetry]
//	CP -> DP   telemetry_ack binary gzip'd JSON [TelemetryAck]
//
// The rule is simple on purpose: every CP->DP data frame is gzip'd JSON
// (as Kong's reconfigure is), every DP->CP data frame is plain JSON except
// telemetry, whose per-minute batches are large and compress well. The
// payload of analytics telemetry is described in package
// internal/wire/telemetry.
// [DecodeDPFrame] tells the two apart by the gzip magic bytes, which can
// never start a JSON text. Pings and pongs are the same as in Kong's
// protocol.
package wire

// ProtocolVersion is the version of the Gantry extension this build speaks,
// sent in [GantryHello.ProtocolVersion]. It only ever grows; the CP speaks
// min(its own, the runtime's) and keeps serving older runtimes.
//
// History:
//
//	0  no Gantry extension: a Kong Gateway data plane, or a runtime that
//	   sent no "gantry" object. Only Kong's reconfigure frames are sent.
//	1  basic_info carries {"gantry":{"protocol_version","capabilities"}};
//	   the CP replies with a hello, sends revision frames instead of
//	   reconfigure, and the runtime answers each revision with ack or nack
//	   (per-entity errors). The telemetry frame type is reserved, its
//	   payload opaque.
//	2  capability "analytics": the runtime sends telemetry frames of schema
//	   "gantry.analytics.v1" numbered by a per-node seq, and the CP answers
//	   each batch it stored (or recognised as a duplicate, or discarded for
//	   good) with telemetry_ack.
const ProtocolVersion = 2

// Capabilities a Gantry runtime may announce in [GantryHello.Capabilities].
// The CP enables a feature only when both sides list it.
const (
	// CapRevisions: the runtime takes revision frames and answers each one
	// with an ack or a nack.
	CapRevisions = "revisions"
	// CapTelemetry: the runtime sends telemetry frames.
	CapTelemetry = "telemetry"
	// CapAnalytics: the runtime sends analytics batches (telemetry frames
	// of schema "gantry.analytics.v1" with Seq > 0) and keeps each one
	// buffered until the CP acknowledges it with a telemetry_ack.
	CapAnalytics = "analytics"
	// CapDeltas is reserved for incremental (delta) configuration updates;
	// no frame carries deltas yet.
	CapDeltas = "deltas"
)
