//go:build !race

package apttest

const raceEnabled = false
