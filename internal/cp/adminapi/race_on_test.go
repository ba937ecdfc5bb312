//go:build race

package adminapi

// raceEnabled: the race detector changes allocation counts, so allocation
// budgets only hold without it (make test runs them first without it).
const raceEnabled = true
