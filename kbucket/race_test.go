//go:build race

package kbucket

// raceEnabled scales heavy tests down under the race detector.
const raceEnabled = true
