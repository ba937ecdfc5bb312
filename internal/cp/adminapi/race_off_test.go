//go:build !race

package adminapi

const raceEnabled = false
