// Package kongcompat adapts the configuration Gantry produces (Kong's declarative format 3.0 at
// the version schema.KongVersion names) for Kong data planes of older 3.x versions, the way Kong's
// own control plane does in kong/clustering/compat: it removes the fields, values and entity types
// an older data plane does not know, so that its declarative parser accepts the configuration, and
// it says which of those removals change how the gateway behaves.
//
// The table of what each version lacks is [Table]; [Downgrade] applies it. Both the control plane
// and tests import this package; it imports only internal/wire and internal/config/schema.
package kongcompat

import (
	"strconv"
	"strings"
)

// VersionNum returns Kong's numeric form of a version, major·1e9 + minor·1e6 + patch·1e3 + extra,
// as kong/clustering/compat/version.lua computes it: "3.4.3.12-enterprise-edition" is 3004003012,
// "3.10.0-rc.1" is 3010000000. The version must start with three dot-separated numbers; a fourth
// (Kong Enterprise's patch) is optional, and anything after the last number is ignored. ok is
// false for anything else.
func VersionNum(version string) (num int64, ok bool) {
	var nums [4]int64
	rest := version
	for i := range nums {
		n := 0
		for n < len(rest) && n < 4 && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 0 || n > 3 {
			if i < 3 {
				return 0, false
			}
			break // the fourth number is optional
		}
		v, _ := strconv.Atoi(rest[:n]) // at most 3 digits: cannot fail
		nums[i] = int64(v)
		rest = rest[n:]
		if i < 2 {
			if !strings.HasPrefix(rest, ".") {
				return 0, false
			}
			rest = rest[1:]
			continue
		}
		if !strings.HasPrefix(rest, ".") {
			break // a suffix, or the end
		}
		rest = rest[1:]
	}
	return nums[0]*1_000_000_000 + nums[1]*1_000_000 + nums[2]*1_000 + nums[3], true
}

// mustVersionNum is VersionNum for the table's own, known-good versions.
func mustVersionNum(version string) int64 {
	n, ok := VersionNum(version)
	if !ok {
		panic("kongcompat: bad version " + version)
	}
	return n
}
