package telemetry

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// The histogram is log-linear: values below 64 have a bucket each (exact);
// above, every power of two is split into 64 equal buckets, so a bucket's
// width is at most 1/64 of its lower bound and its midpoint is within 1/128
// (0.8%) of every value in it. Bucket i of value v >= 64 is e*64 + m where
// e = bits.Len64(v) - 7 and m = v >> e (64 <= m < 128): indexes are dense
// and increase with the value, so merging is adding counts by index.
const (
	subBuckets = 64
	// NumBuckets is the number of bucket indexes, 0..NumBuckets-1; the last
	// ends at math.MaxUint64.
	NumBuckets = 57*subBuckets + 2*subBuckets
	// RelativeError bounds |Quantile - true value| / true value for values
	// of 64 and above; smaller values are exact.
	RelativeError = 1.0 / (2 * subBuckets)
)

// BucketOf returns the index of the bucket holding v.
func BucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	e := bits.Len64(v) - 7
	return e*subBuckets + int(v>>uint(e))
}

// BucketBounds returns the smallest and largest value of bucket i
// (0 <= i < NumBuckets).
func BucketBounds(i int) (lo, hi uint64) {
	if i < subBuckets {
		return uint64(i), uint64(i)
	}
	e := uint(i/subBuckets - 1)
	m := uint64(i%subBuckets + subBuckets)
	lo = m << e
	return lo, lo + (uint64(1) << e) - 1
}

// BucketValue is the value that represents bucket i: its midpoint.
func BucketValue(i int) float64 {
	lo, hi := BucketBounds(i)
	return float64(lo) + float64(hi-lo)/2
}

// Bin is one non-empty bucket.
type Bin struct {
	// Index is the bucket index, 0 <= Index < NumBuckets.
	Index int
	// Count is the number of values in the bucket; > 0.
	Count uint64
}

// Histogram is a mergeable log-linear histogram of non-negative integers,
// held sparse: its non-empty bins in increasing index order. The zero value
// is empty and ready to use. Its JSON form is a flat array
// [index, count, index, count, ...].
type Histogram struct {
	bins []Bin // strictly increasing Index, Count > 0
}

// ErrBadHistogram is wrapped by decoding errors of a histogram.
var ErrBadHistogram = errors.New("invalid histogram")

// Add counts value v once.
func (h *Histogram) Add(v uint64) { h.AddBucket(BucketOf(v), 1) }

// AddBucket adds n values to bucket i. Adding in increasing index order
// appends; any order is correct. It panics on an index out of range.
func (h *Histogram) AddBucket(i int, n uint64) {
	if i < 0 || i >= NumBuckets {
		panic(fmt.Sprintf("telemetry: bucket %d out of range", i))
	}
	if n == 0 {
		return
	}
	k := len(h.bins)
	if k == 0 || h.bins[k-1].Index < i {
		h.bins = append(h.bins, Bin{i, n})
		return
	}
	j, found := slices.BinarySearchFunc(h.bins, i, func(b Bin, t int) int { return b.Index - t })
	if found {
		h.bins[j].Count += n
		return
	}
	h.bins = slices.Insert(h.bins, j, Bin{i, n})
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if len(o.bins) == 0 {
		return
	}
	if len(h.bins) == 0 {
		h.bins = slices.Clone(o.bins)
		return
	}
	out := make([]Bin, 0, len(h.bins)+len(o.bins))
	a, b := h.bins, o.bins
	for len(a) > 0 && len(b) > 0 {
		switch {
		case a[0].Index < b[0].Index:
			out, a = append(out, a[0]), a[1:]
		case a[0].Index > b[0].Index:
			out, b = append(out, b[0]), b[1:]
		default:
			out = append(out, Bin{a[0].Index, a[0].Count + b[0].Count})
			a, b = a[1:], b[1:]
		}
	}
	out = append(append(out, a...), b...)
	h.bins = out
}

// Bins returns the non-empty bins in increasing index order; the slice
// belongs to h.
func (h *Histogram) Bins() []Bin { return h.bins }

// Reset empties h, keeping its memory.
func (h *Histogram) Reset() { h.bins = h.bins[:0] }

// Count is the number of values in h.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, b := range h.bins {
		n += b.Count
	}
	return n
}

// Quantile returns the nearest-rank q-quantile (0 <= q <= 1) as its
// bucket's midpoint, or NaN for an empty histogram.
func (h *Histogram) Quantile(q float64) float64 {
	n := h.Count()
	if n == 0 {
		return math.NaN()
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for _, b := range h.bins {
		seen += b.Count
		if seen >= rank {
			return BucketValue(b.Index)
		}
	}
	return BucketValue(h.bins[len(h.bins)-1].Index)
}

// MarshalJSON renders h as [index, count, ...].
func (h Histogram) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, 2+len(h.bins)*12)
	out = append(out, '[')
	for i, b := range h.bins {
		if i > 0 {
			out = append(out, ',')
		}
		out = fmt.Appendf(out, "%d,%d", b.Index, b.Count)
	}
	return append(out, ']'), nil
}

// UnmarshalJSON parses [index, count, ...] and checks it: indexes strictly
// increasing and in range, counts positive.
func (h *Histogram) UnmarshalJSON(data []byte) error {
	var flat []uint64
	if err := json.Unmarshal(data, &flat); err != nil {
		return fmt.Errorf("%w: %w", ErrBadHistogram, err)
	}
	if len(flat)%2 != 0 || len(flat)/2 > NumBuckets {
		return fmt.Errorf("%w: %d numbers, want index/count pairs", ErrBadHistogram, len(flat))
	}
	bins := make([]Bin, 0, len(flat)/2)
	for i := 0; i < len(flat); i += 2 {
		if err := checkBin(bins, flat[i], flat[i+1]); err != nil {
			return err
		}
		bins = append(bins, Bin{int(flat[i]), flat[i+1]})
	}
	h.bins = bins
	return nil
}

func checkBin(prev []Bin, index, count uint64) error {
	if index >= NumBuckets {
		return fmt.Errorf("%w: bucket %d out of range", ErrBadHistogram, index)
	}
	if len(prev) > 0 && uint64(prev[len(prev)-1].Index) >= index {
		return fmt.Errorf("%w: bucket %d after %d", ErrBadHistogram, index, prev[len(prev)-1].Index)
	}
	if count == 0 {
		return fmt.Errorf("%w: empty bucket %d", ErrBadHistogram, index)
	}
	return nil
}

// AppendBinary appends h's compact binary form (a uvarint bin count, then
// per bin the uvarint index delta and uvarint count) to dst.
func (h *Histogram) AppendBinary(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(h.bins)))
	prev := -1
	for _, b := range h.bins {
		dst = binary.AppendUvarint(dst, uint64(b.Index-prev))
		dst = binary.AppendUvarint(dst, b.Count)
		prev = b.Index
	}
	return dst
}

// ReadBinary decodes one histogram written by AppendBinary from the start
// of data into h and returns the rest of data.
func (h *Histogram) ReadBinary(data []byte) ([]byte, error) {
	n, k := binary.Uvarint(data)
	if k <= 0 || n > NumBuckets {
		return nil, fmt.Errorf("%w: bad bin count", ErrBadHistogram)
	}
	data = data[k:]
	bins := make([]Bin, 0, n)
	prev := int64(-1)
	for range n {
		d, k := binary.Uvarint(data)
		if k <= 0 || d == 0 || d > NumBuckets {
			return nil, fmt.Errorf("%w: bad index", ErrBadHistogram)
		}
		data = data[k:]
		c, k := binary.Uvarint(data)
		if k <= 0 {
			return nil, fmt.Errorf("%w: bad count", ErrBadHistogram)
		}
		data = data[k:]
		idx := uint64(prev + int64(d))
		if err := checkBin(bins, idx, c); err != nil {
			return nil, err
		}
		bins = append(bins, Bin{int(idx), c})
		prev = int64(idx)
	}
	h.bins = bins
	return data, nil
}
