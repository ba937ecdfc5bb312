package telemetry

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBuckets(t *testing.T) {
	values := []uint64{0, 1, 63, 64, 65, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, math.MaxUint64 - 1, math.MaxUint64}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		values = append(values, r.Uint64()>>r.IntN(64))
	}
	for _, v := range values {
		i := BucketOf(v)
		if i < 0 || i >= NumBuckets {
			t.Fatalf("BucketOf(%d) = %d, out of range", v, i)
		}
		lo, hi := BucketBounds(i)
		if v < lo || v > hi {
			t.Fatalf("BucketOf(%d) = %d with bounds [%d, %d]", v, i, lo, hi)
		}
		if v >= 64 {
			if rel := math.Abs(BucketValue(i)-float64(v)) / float64(v); rel > RelativeError {
				t.Fatalf("value %d: representative %v, relative error %v > %v", v, BucketValue(i), rel, RelativeError)
			}
		} else if BucketValue(i) != float64(v) {
			t.Fatalf("value %d is not exact: %v", v, BucketValue(i))
		}
	}
	// Buckets tile the value range: each starts right after the previous.
	for i := 1; i < NumBuckets; i++ {
		_, prevHi := BucketBounds(i - 1)
		lo, _ := BucketBounds(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, prevHi)
		}
	}
	if _, hi := BucketBounds(NumBuckets - 1); hi != math.MaxUint64 {
		t.Fatalf("last bucket ends at %d", hi)
	}
}

func TestQuantileAndMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var all []uint64
	var a, b, whole Histogram
	for i := range 20000 {
		v := uint64(r.ExpFloat64() * 5000)
		all = append(all, v)
		whole.Add(v)
		if i%3 == 0 {
			a.Add(v)
		} else {
			b.Add(v)
		}
	}
	a.Merge(&b)
	if !slices.Equal(a.Bins(), whole.Bins()) {
		t.Fatal("merging two halves differs from adding all values to one histogram")
	}
	slices.Sort(all)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.95, 0.99, 1} {
		rank := int(math.Ceil(q*float64(len(all)))) - 1
		want := float64(all[rank])
		got := a.Quantile(q)
		if want < 64 && got != want || want >= 64 && math.Abs(got-want)/want > RelativeError {
			t.Errorf("q%v = %v, exact %v", q, got, want)
		}
	}
	var empty Histogram
	if !math.IsNaN(empty.Quantile(0.5)) || empty.Count() != 0 {
		t.Error("empty histogram")
	}
	if a.Count() != uint64(len(all)) {
		t.Errorf("count %d", a.Count())
	}
}

func TestAddBucketAnyOrder(t *testing.T) {
	var h Histogram
	for _, i := range []int{500, 3, 70, 3, 4000 % NumBuckets, 0, 70} {
		h.AddBucket(i, 2)
	}
	want := []Bin{{0, 2}, {3, 4}, {70, 4}, {500, 2}, {4000 % NumBuckets, 2}}
	slices.SortFunc(want, func(x, y Bin) int { return x.Index - y.Index })
	if !slices.Equal(h.Bins(), want) {
		t.Errorf("bins %v, want %v", h.Bins(), want)
	}
}

func TestHistogramEncodings(t *testing.T) {
	var h Histogram
	for _, v := range []uint64{0, 5, 5, 64, 1e6, math.MaxUint64} {
		h.Add(v)
	}
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if string(j) != `[0,1,5,2,64,1,`+itoa(BucketOf(1e6))+`,1,`+itoa(NumBuckets-1)+`,1]` {
		t.Errorf("JSON %s", j)
	}
	var back Histogram
	if err := json.Unmarshal(j, &back); err != nil || !slices.Equal(back.Bins(), h.Bins()) {
		t.Fatalf("JSON round trip: %v, %v", back.Bins(), err)
	}
	bin := h.AppendBinary([]byte("x"))
	var fromBin Histogram
	rest, err := fromBin.ReadBinary(append(bin[1:], 'y'))
	if err != nil || string(rest) != "y" || !slices.Equal(fromBin.Bins(), h.Bins()) {
		t.Fatalf("binary round trip: %v, rest %q, %v", fromBin.Bins(), rest, err)
	}
	bad := []struct{ name, json string }{
		{"odd length", `[1,2,3]`},
		{"out of range", `[` + itoa(NumBuckets) + `,1]`},
		{"not increasing", `[5,1,5,1]`},
		{"decreasing", `[6,1,5,1]`},
		{"zero count", `[5,0]`},
		{"negative", `[-1,1]`},
		{"not an array", `{}`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			if err := json.Unmarshal([]byte(tt.json), &h); !errors.Is(err, ErrBadHistogram) {
				t.Errorf("err %v, want ErrBadHistogram", err)
			}
		})
	}
	for _, data := range [][]byte{{}, {0xff}, {2, 1, 1}, {1, 0, 1}, {1, 1, 0}} {
		var h Histogram
		if _, err := h.ReadBinary(data); !errors.Is(err, ErrBadHistogram) {
			t.Errorf("ReadBinary(%v) = %v", data, err)
		}
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func FuzzHistogramBinary(f *testing.F) {
	var h Histogram
	h.Add(3)
	h.Add(1e9)
	f.Add(h.AppendBinary(nil))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var h Histogram
		if _, err := h.ReadBinary(data); err != nil {
			return
		}
		// Whatever decodes re-encodes to a form that decodes the same.
		var again Histogram
		if _, err := again.ReadBinary(h.AppendBinary(nil)); err != nil || !slices.Equal(again.Bins(), h.Bins()) {
			t.Fatalf("re-decoding: %v", err)
		}
	})
}

func BenchmarkHistogramAdd(b *testing.B) {
	var h Histogram
	for i := 0; b.Loop(); i++ {
		h.Add(uint64(i % 100000))
	}
}
