//go:build race

package apttest

const raceEnabled = true
