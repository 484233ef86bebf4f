// Package fuzz holds fuzz targets that cross package boundaries: hostile input
// fed through several layers at once, where each package's own targets only
// see their own layer. `make fuzz` runs them with the per-package targets, and
// `go test` runs their seed corpora as regression tests.
package fuzz
