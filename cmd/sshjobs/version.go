package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/sshjobs/sshjobs/sqlstore"
)

// buildInfo is what `sshjobs version` says about this binary.
type buildInfo struct {
	Version  string `json:"version"`            // appVersion
	Module   string `json:"module,omitempty"`   // the main module's version in the build info
	Revision string `json:"revision,omitempty"` // VCS revision, for a build from a checkout
	Time     string `json:"time,omitempty"`     // VCS commit time (RFC 3339)
	Modified bool   `json:"modified"`           // the checkout had uncommitted changes
	Go       string `json:"go"`
	Platform string `json:"platform"`
	Schema   int    `json:"schema"` // the database schema version this binary migrates to
}

// readBuildInfo gathers buildInfo from the linker's -X value, the module's
// build info (`go install ...@vX`) and the VCS stamp (`go build` in a
// checkout).
func readBuildInfo() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(bi)
}

// fromBuildInfo is readBuildInfo on given build info (nil: none), for tests.
// A build from a git worktree (.git a file) has no VCS stamp: Go looks for a
// .git folder.
func fromBuildInfo(bi *debug.BuildInfo) buildInfo {
	b := buildInfo{Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			b.Module = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				b.Modified, _ = strconv.ParseBool(s.Value)
			}
		}
	}
	b.Schema, _ = sqlstore.SchemaVersion()
	b.Version = b.version()
	return b
}

// version is the one string that names this build, in `sshjobs version`,
// the MCP serverInfo and the daemon's status: -ldflags "-X main.version"
// when set, else the module version (a release, or Go's pseudo-version of
// the checkout), else "dev" with the revision, so that two builds of a
// checkout can be told apart.
func (b buildInfo) version() string {
	switch {
	case version != "dev":
		return version
	case b.Module != "":
		return b.Module
	case b.Revision != "":
		v := "dev-" + b.Revision[:min(12, len(b.Revision))]
		if b.Modified {
			v += "+dirty"
		}
		return v
	}
	return "dev"
}

var appVersionOnce = sync.OnceValue(func() string { return readBuildInfo().Version })

// appVersion is buildInfo's version, read once.
func appVersion() string { return appVersionOnce() }

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	// Not newFlags: the shared settings (database, ssh_config) mean nothing here.
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sshjobs version [-json]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err.Error()}
	}
	b := readBuildInfo()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(b)
	}
	fmt.Fprintf(stdout, "sshjobs %s\n", b.Version)
	if b.Module != "" && b.Module != b.Version {
		fmt.Fprintf(stdout, "module    %s\n", b.Module)
	}
	if b.Revision != "" {
		rev := b.Revision
		if b.Modified {
			rev += " (modified)"
		}
		fmt.Fprintf(stdout, "revision  %s\n", rev)
	}
	if t, err := time.Parse(time.RFC3339, b.Time); err == nil {
		fmt.Fprintf(stdout, "committed %s\n", t.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(stdout, "go        %s %s\n", b.Go, b.Platform)
	fmt.Fprintf(stdout, "schema    %d (database migrations this build applies)\n", b.Schema)
	return nil
}
