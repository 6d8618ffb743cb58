//go:build !unix

package sqlstore

// writableDir is checked on unix only; elsewhere SQLite's own error stands.
func writableDir(string) error { return nil }
