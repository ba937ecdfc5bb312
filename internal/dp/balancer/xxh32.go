package balancer

import "math/bits"

// The five primes of the 32-bit xxHash algorithm (Yann Collet's published
// specification). The consistent-hashing ring uses xxHash32 with seed 0, the
// same function Kong's ring uses, so that a mixed group of Kong and Gantry
// runtimes places IP targets and keys on the same ring positions.
const (
	xxPrime1 uint32 = 2654435761
	xxPrime2 uint32 = 2246822519
	xxPrime3 uint32 = 3266489917
	xxPrime4 uint32 = 668265263
	xxPrime5 uint32 = 374761393
)

// xxh32 returns the 32-bit xxHash of s with seed 0. It reads the string in
// place, so hashing never allocates.
func xxh32(s string) uint32 {
	n := len(s)
	var h uint32
	i := 0
	if n >= 16 {
		// Seed 0: the lanes start at p1+p2, p2, 0 and -p1 (mod 2^32).
		p1 := xxPrime1
		v1 := p1 + xxPrime2
		v2 := xxPrime2
		v3 := uint32(0)
		v4 := -p1
		for ; i+16 <= n; i += 16 {
			v1 = xxRound(v1, le32(s, i))
			v2 = xxRound(v2, le32(s, i+4))
			v3 = xxRound(v3, le32(s, i+8))
			v4 = xxRound(v4, le32(s, i+12))
		}
		h = bits.RotateLeft32(v1, 1) + bits.RotateLeft32(v2, 7) +
			bits.RotateLeft32(v3, 12) + bits.RotateLeft32(v4, 18)
	} else {
		h = xxPrime5
	}
	h += uint32(n)
	for ; i+4 <= n; i += 4 {
		h += le32(s, i) * xxPrime3
		h = bits.RotateLeft32(h, 17) * xxPrime4
	}
	for ; i < n; i++ {
		h += uint32(s[i]) * xxPrime5
		h = bits.RotateLeft32(h, 11) * xxPrime1
	}
	h ^= h >> 15
	h *= xxPrime2
	h ^= h >> 13
	h *= xxPrime3
	h ^= h >> 16
	return h
}

func xxRound(acc, lane uint32) uint32 {
	acc += lane * xxPrime2
	return bits.RotateLeft32(acc, 13) * xxPrime1
}

// le32 reads four bytes of s at i as a little-endian integer.
func le32(s string, i int) uint32 {
	return uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16 | uint32(s[i+3])<<24
}
