//go:build race

package aptindex

const raceEnabled = true
