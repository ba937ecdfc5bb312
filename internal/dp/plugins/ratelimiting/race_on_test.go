//go:build race

package ratelimiting

// raceEnabled: sync.Pool drops items at random under the race detector,
// so allocation budgets only hold without it.
const raceEnabled = true
