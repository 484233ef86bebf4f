//go:build race

package node_test

// raceEnabled scales the heavier tests down under the race detector.
const raceEnabled = true
