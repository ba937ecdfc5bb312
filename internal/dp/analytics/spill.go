package analytics

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/gantry-gw/gantry/internal/wire/telemetry"
)

// SpillFile is the outbox's file in the runtime's cache directory:
//
//	gantry-analytics-outbox 1 <sha256 of body, hex> <body length in bytes>\n
//	<body: gzip'd JSON {"next_seq": n, "batches": [{"seq", "minutes", "first", "payload"}]}>
//
// written atomically through cache.Cache.WriteFile. A file that does not
// verify is refused as a whole.
const SpillFile = "analytics.outbox"

const (
	spillMagic   = "gantry-analytics-outbox"
	spillVersion = 1
	// maxSpillHeader bounds the header line, in bytes.
	maxSpillHeader = 256
)

// ErrCorruptSpill is wrapped by the error of a spill file that does not
// verify.
var ErrCorruptSpill = errors.New("analytics spill file is corrupt")

type spillBody struct {
	NextSeq int64        `json:"next_seq"`
	Batches []spillBatch `json:"batches"`
}

type spillBatch struct {
	Seq     int64           `json:"seq"`
	Minutes int             `json:"minutes"`
	First   int64           `json:"first"`
	Payload json.RawMessage `json:"payload"`
}

type spilled struct {
	nextSeq int64
	batches []*Batch
}

// spill writes every buffered batch and the next seq to SpillFile.
func (o *Outbox) spill(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o.mu.Lock()
	batches := append([]*Batch(nil), o.batches...)
	body := spillBody{NextSeq: o.nextSeq, Batches: make([]spillBatch, 0, len(batches))}
	o.mu.Unlock()
	for _, b := range batches {
		p, err := b.Payload()
		if err != nil {
			return fmt.Errorf("analytics: spill batch %d: %w", b.Seq, err)
		}
		body.Batches = append(body.Batches, spillBatch{Seq: b.Seq, Minutes: b.Minutes, First: b.First, Payload: p})
	}
	gz, err := wire.EncodeGzipJSON(body)
	if err != nil {
		return fmt.Errorf("analytics: spill: %w", err)
	}
	sum := sha256.Sum256(gz)
	var buf bytes.Buffer
	buf.Grow(len(gz) + maxSpillHeader)
	fmt.Fprintf(&buf, "%s %d %s %d\n", spillMagic, spillVersion, hex.EncodeToString(sum[:]), len(gz))
	buf.Write(gz)
	if err := o.cache.WriteFile(SpillFile, buf.Bytes()); err != nil {
		return fmt.Errorf("analytics: spill: %w", err)
	}
	o.log.Info("analytics outbox spilled to the cache", "batches", len(body.Batches), "next_seq", body.NextSeq)
	return nil
}

// loadSpill reads SpillFile; nil, nil when there is none.
func (o *Outbox) loadSpill(ctx context.Context) (*spilled, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := o.cache.ReadFile(SpillFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeSpill(data)
}

// decodeSpill verifies and decodes the contents of SpillFile.
func decodeSpill(data []byte) (*spilled, error) {
	nl := bytes.IndexByte(data[:min(len(data), maxSpillHeader)], '\n')
	if nl < 0 {
		return nil, fmt.Errorf("%w: no header line", ErrCorruptSpill)
	}
	f := strings.Fields(string(data[:nl]))
	if len(f) != 4 || f[0] != spillMagic || f[1] != strconv.Itoa(spillVersion) {
		return nil, fmt.Errorf("%w: not an analytics spill of version %d", ErrCorruptSpill, spillVersion)
	}
	want, err := hex.DecodeString(f[2])
	if err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf("%w: bad checksum field", ErrCorruptSpill)
	}
	body := data[nl+1:]
	if n, err := strconv.Atoi(f[3]); err != nil || n != len(body) {
		return nil, fmt.Errorf("%w: body is %d bytes, header says %s", ErrCorruptSpill, len(body), f[3])
	}
	if got := sha256.Sum256(body); !bytes.Equal(got[:], want) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorruptSpill)
	}
	raw, err := wire.Gunzip(body, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptSpill, err)
	}
	var sb spillBody
	if err := json.Unmarshal(raw, &sb); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptSpill, err)
	}
	sp := &spilled{nextSeq: sb.NextSeq}
	last := int64(0)
	for _, b := range sb.Batches {
		if b.Seq <= last || b.Seq >= sb.NextSeq || b.Minutes <= 0 {
			return nil, fmt.Errorf("%w: batch seq %d out of order or without minutes", ErrCorruptSpill, b.Seq)
		}
		tb, err := telemetry.Decode(b.Payload)
		if err != nil {
			return nil, fmt.Errorf("%w: batch %d: %w", ErrCorruptSpill, b.Seq, err)
		}
		if len(tb.Minutes) != b.Minutes {
			return nil, fmt.Errorf("%w: batch %d holds %d minutes, not %d", ErrCorruptSpill, b.Seq, len(tb.Minutes), b.Minutes)
		}
		gz, err := wire.EncodeGzipJSON(b.Payload)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorruptSpill, err)
		}
		sp.batches = append(sp.batches, &Batch{Seq: b.Seq, Minutes: b.Minutes, First: tb.Minutes[0].Start,
			Last: tb.Minutes[len(tb.Minutes)-1].Start, Gzip: gz})
		last = b.Seq
	}
	return sp, nil
}
