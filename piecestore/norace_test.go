//go:build !race

package piecestore

const raceEnabled = false
