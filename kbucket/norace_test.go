//go:build !race

package kbucket

const raceEnabled = false
