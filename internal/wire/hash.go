package wire

import (
	"crypto/md5" //nolint:gosec // Kong's configuration hash is MD5 by protocol
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
)

// EmptyConfigHash is Kong's DECLARATIVE_EMPTY_CONFIG_HASH: 32 zeros. It is
// the hash of a missing entity collection, and the ping payload of a data
// plane that holds no configuration yet.
const EmptyConfigHash = "00000000000000000000000000000000"

// foldThreshold is the buffer size, in bytes, above which Kong replaces the
// serialization buffer with the 16-byte binary md5 of its content before
// appending the next value. It bounds memory on huge configurations and is
// part of the hash definition, so it must never change.
const foldThreshold = 1_000_000

// Hashes are the per-collection config hashes Kong sends in a reconfigure
// frame. Every field is 32 lowercase hex characters; a collection absent
// from the configuration hashes to [EmptyConfigHash].
type Hashes struct {
	// Config equals the frame's config_hash.
	Config string `json:"config"`
	// Routes, Services, Plugins, Upstreams and Targets hash those collections.
	Routes    string `json:"routes"`
	Services  string `json:"services"`
	Plugins   string `json:"plugins"`
	Upstreams string `json:"upstreams"`
	Targets   string `json:"targets"`
}

// FillEmpty sets every empty field to [EmptyConfigHash], as Kong's data
// plane does with a frame whose hashes are incomplete.
func (h *Hashes) FillEmpty() {
	for _, f := range []*string{&h.Config, &h.Routes, &h.Services, &h.Plugins, &h.Upstreams, &h.Targets} {
		if *f == "" {
			*f = EmptyConfigHash
		}
	}
}

// hashedCollections are the config_table keys that get a hash of their own,
// in the order their hashes are concatenated into the config hash.
var hashedCollections = [5]string{"routes", "services", "plugins", "upstreams", "targets"}

// ConfigHash computes Kong's config_hash and per-collection hashes of a
// config_table, exactly as Kong's control plane does, so that a Kong data
// plane and a Gantry runtime agree with the CP byte for byte.
//
// config must be a decoded JSON value: map[string]any, []any, string, bool,
// nil, float64 or json.Number (ints are accepted too). The hash is
//
//	md5hex(H(routes) + H(services) + H(plugins) + H(upstreams) + H(targets) + H(rest))
//
// where H(x) is md5hex of Kong's sorted serialization of x (see
// [HashValue]), H of a missing key is [EmptyConfigHash], and rest is the
// table without those five keys. A key present with a JSON null is not
// missing: it hashes as "/null/". If config is not a map, its hash is
// H(config) and the collection hashes are [EmptyConfigHash].
func ConfigHash(config any) (string, Hashes, error) {
	h := hasherPool.Get().(*hasher)
	defer hasherPool.Put(h)

	m, ok := config.(map[string]any)
	if !ok {
		sum, err := h.hash(config)
		if err != nil {
			return "", Hashes{}, err
		}
		hs := Hashes{Config: sum}
		hs.FillEmpty()
		return sum, hs, nil
	}

	var parts [6]string
	for i, key := range hashedCollections {
		v, present := m[key]
		if !present {
			parts[i] = EmptyConfigHash
			continue
		}
		sum, err := h.hash(v)
		if err != nil {
			return "", Hashes{}, fmt.Errorf("hashing %s: %w", key, err)
		}
		parts[i] = sum
	}
	sum, err := h.hashExcluding(m)
	if err != nil {
		return "", Hashes{}, err
	}
	parts[5] = sum

	var cat [6 * 32]byte
	for i, p := range parts {
		copy(cat[i*32:], p)
	}
	all := md5.Sum(cat[:]) //nolint:gosec // Kong's configuration hash, not a security boundary
	configHash := hex.EncodeToString(all[:])
	return configHash, Hashes{
		Config:    configHash,
		Routes:    parts[0],
		Services:  parts[1],
		Plugins:   parts[2],
		Upstreams: parts[3],
		Targets:   parts[4],
	}, nil
}

// HashValue is Kong's calculate_hash: the md5 hex of the sorted
// serialization of a decoded JSON value v. The serialization writes
//
//   - null as "/null/", booleans as "true"/"false", strings raw;
//   - numbers as LuaJIT prints them ("%.14g": 60, 1.5, 1e+15);
//   - an empty array or object as "{}" (Lua cannot tell them apart);
//   - an array of 1 to 5 elements joined by ";", and a longer array with
//     ";" after every element (Kong unrolls the short cases);
//   - an object as "key:" value ";" for each key in byte order.
//
// Before each value is written, a buffer longer than 1,000,000 bytes is
// replaced by its 16-byte binary md5.
func HashValue(v any) (string, error) {
	h := hasherPool.Get().(*hasher)
	defer hasherPool.Put(h)
	return h.hash(v)
}

// hasher holds reusable scratch space so that hashing a large configuration
// does not allocate per map.
type hasher struct {
	buf []byte
	// keys is a stack of map keys; each map level sorts its own window of
	// it and truncates back when done.
	keys []string
}

var hasherPool = sync.Pool{New: func() any {
	return &hasher{buf: make([]byte, 0, 4096)}
}}

func (h *hasher) reset() {
	h.buf = h.buf[:0]
	h.keys = h.keys[:0]
}

func (h *hasher) sum() string {
	s := md5.Sum(h.buf) //nolint:gosec // Kong's configuration hash, not a security boundary
	return hex.EncodeToString(s[:])
}

func (h *hasher) hash(v any) (string, error) {
	h.reset()
	if err := h.write(v); err != nil {
		return "", err
	}
	return h.sum(), nil
}

// hashExcluding hashes m without the five collections hashed separately,
// without copying m.
func (h *hasher) hashExcluding(m map[string]any) (string, error) {
	h.reset()
	h.fold()
	base := len(h.keys)
	for k := range m {
		if !slices.Contains(hashedCollections[:], k) {
			h.keys = append(h.keys, k)
		}
	}
	if err := h.writeMapKeys(m, base); err != nil {
		return "", err
	}
	return h.sum(), nil
}

// fold applies Kong's size bound; see foldThreshold.
func (h *hasher) fold() {
	if len(h.buf) > foldThreshold {
		s := md5.Sum(h.buf) //nolint:gosec // Kong's configuration hash, not a security boundary
		h.buf = append(h.buf[:0], s[:]...)
	}
}

func (h *hasher) write(v any) error {
	h.fold()
	switch x := v.(type) {
	case nil:
		h.buf = append(h.buf, "/null/"...)
	case string:
		h.buf = append(h.buf, x...)
	case bool:
		h.buf = strconv.AppendBool(h.buf, x)
	case float64:
		return h.writeNumber(x)
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return fmt.Errorf("invalid number %q: %w", string(x), err)
		}
		return h.writeNumber(f)
	case int:
		return h.writeNumber(float64(x))
	case int64:
		return h.writeNumber(float64(x))
	case []any:
		return h.writeArray(x)
	case map[string]any:
		base := len(h.keys)
		for k := range x {
			h.keys = append(h.keys, k)
		}
		return h.writeMapKeys(x, base)
	default:
		return fmt.Errorf("cannot hash value of type %T (only decoded JSON values are supported)", v)
	}
	return nil
}

// writeNumber prints f as LuaJIT's tostring does: "%.14g". Integral values
// of up to 14 digits therefore print without a fraction or exponent.
func (h *hasher) writeNumber(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("cannot hash non-finite number %v", f)
	}
	h.buf = strconv.AppendFloat(h.buf, f, 'g', 14, 64)
	return nil
}

func (h *hasher) writeArray(a []any) error {
	n := len(a)
	if n == 0 {
		h.buf = append(h.buf, "{}"...)
		return nil
	}
	for i, e := range a {
		if err := h.write(e); err != nil {
			return err
		}
		// Kong joins 1-5 elements with separators only between them, and
		// terminates every element of longer arrays.
		if n > 5 || i < n-1 {
			h.buf = append(h.buf, ';')
		}
	}
	return nil
}

// writeMapKeys writes m using the keys in h.keys[base:], then pops them.
func (h *hasher) writeMapKeys(m map[string]any, base int) error {
	defer func() { h.keys = h.keys[:base] }()
	keys := h.keys[base:]
	if len(keys) == 0 {
		h.buf = append(h.buf, "{}"...)
		return nil
	}
	slices.Sort(keys)
	for i := base; i < len(h.keys); i++ {
		k := h.keys[i]
		h.buf = append(h.buf, k...)
		h.buf = append(h.buf, ':')
		if err := h.write(m[k]); err != nil {
			return err
		}
		h.buf = append(h.buf, ';')
	}
	return nil
}
