//go:build race

package analytics

// raceEnabled: the race detector adds allocations, so budgets are skipped.
const raceEnabled = true
