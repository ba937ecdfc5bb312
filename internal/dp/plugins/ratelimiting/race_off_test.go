//go:build !race

package ratelimiting

const raceEnabled = false
