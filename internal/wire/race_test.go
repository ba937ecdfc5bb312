//go:build race

package wire

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// allocation budgets do not hold.
const raceEnabled = true
