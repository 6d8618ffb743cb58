// Package migrations holds the SQLite schema of sshjobs as numbered SQL files
// (0001_jobs.sql, 0002_...), embedded in the binary. sqlstore applies each file
// whose number is above the database's PRAGMA user_version, in order, in one
// transaction that also sets user_version to the file's number. Files are only
// ever added: a released file never changes, because databases in the field
// have already run it.
package migrations

import "embed"

// FS holds the *.sql files at its root.
//
//go:embed *.sql
var FS embed.FS
