package sessions

import (
	"regexp"
	"sync"
)

// lazyRE compiles pattern on its first use (as internal/prompt does):
// package initialization runs in every sshjobs process, and most of them (a
// CLI call, an MCP client's front) never meet a network device.
func lazyRE(pattern string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(pattern) })
}
