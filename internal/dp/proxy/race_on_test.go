//go:build race

package proxy

// raceEnabled: the race detector adds allocations, so budgets are skipped.
const raceEnabled = true
